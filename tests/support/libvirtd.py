"""A real libvirtd (9.0, QEMU driver) that a test starts, restarts and removes itself.

Nothing on the machine is touched: the daemon runs in a private mount namespace in which a
temporary directory is bind-mounted over ``/etc/libvirt``, ``/run/libvirt``,
``/var/lib/libvirt``, ``/var/log/libvirt`` and ``/var/cache/libvirt`` (and, when the
``libvirt-qemu`` user that the QEMU driver looks up is missing, over ``/etc/passwd`` and
``/etc/group`` with copies that have it).  Its socket is in that directory, so clients
outside the namespace reach it as ``qemu:///system?socket=DIR/run/libvirt-sock``.

The namespace's first process (:func:`serve`, this file run as a script) is a child
subreaper (``qemu-guests.md`` §6.2): libvirtd double-forks QEMU, and a prompt reaper makes a
destroy take 0.2 s instead of 2 s.  It runs ``virtlogd`` and ``libvirtd`` in the foreground
and obeys one-line commands on its standard input (``stop``, ``kill``, ``start``, ``quit``).
On ``quit``, or when the test's end of the pipe closes, it ends the daemons and SIGKILLs every
QEMU left, reaps them all and exits; the test side then removes the directory.

Every wait is bounded.  Under CI (``CI=true``) a daemon that cannot start fails the test;
elsewhere it skips it.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, NoReturn

__all__ = [
    "Libvirtd",
    "LibvirtdUnavailable",
    "domain_xml",
    "require_binding",
    "require_libvirtd",
    "unavailable",
]

MOUNTS = {
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "log": "/var/log/libvirt",
    "cache": "/var/cache/libvirt",
}

LIBVIRTD_CONF = """\
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
"""

QEMU_CONF = """\
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
remember_owner = 0
dynamic_ownership = 0
"""

WAIT = 20.0
"""Upper bound of any one wait here (a start takes well under a second on an idle machine)."""


class LibvirtdUnavailable(RuntimeError):
    """libvirtd could not be started here (missing binaries, no namespaces, ...)."""


def unavailable(reason: str) -> NoReturn:
    """What a test does when something it needs is missing: fail under CI, skip elsewhere."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_binding() -> Any:
    """The ``libvirt`` Python module (see :func:`unavailable` when it is missing)."""
    try:
        return importlib.import_module("libvirt")
    except ImportError as exc:
        unavailable(
            f"the libvirt Python binding is missing ({exc}): pip install libvirt-python, or "
            "Debian's python3-libvirt in a venv made with --system-site-packages"
        )


def require_libvirtd() -> None:
    """Fail under CI, skip elsewhere, when libvirtd or virsh is not installed."""
    missing = [tool for tool in ("libvirtd", "virtlogd", "virsh") if _which(tool) is None]
    if missing:
        unavailable(
            f"not installed: {', '.join(missing)} (Debian: apt-get install "
            "--no-install-recommends libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)"
        )


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


# -- the test's side ----------------------------------------------------------------------------


class Libvirtd:
    """``with Libvirtd() as daemon:`` a running libvirtd; ``daemon.uri`` reaches it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vblv-", dir="/tmp"))
        self.process: subprocess.Popen[str] | None = None
        self.pid: int | None = None

    @property
    def socket(self) -> Path:
        return self.root / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.socket}"

    @property
    def log(self) -> Path:
        return self.root / "libvirtd.log"

    def __enter__(self) -> Libvirtd:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        unshare = _which("unshare")
        if unshare is None:
            raise LibvirtdUnavailable("unshare (util-linux) is not installed")
        self.process = subprocess.Popen(
            [unshare, "--mount", "--propagation", "private", sys.executable, __file__, "serve",
             str(self.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(self.root / "serve.log").open("w"),
            text=True,
            bufsize=1,
        )  # fmt: skip
        answer = self._answer()
        if not answer.startswith("started"):
            raise LibvirtdUnavailable(f"libvirtd did not start: {answer}\n{self.tail()}")
        self.pid = int(answer.split()[1])

    def command(self, line: str) -> str:
        """Send one command to the subreaper; its answer."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self._answer()

    def _answer(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(WAIT)
        if not result:
            raise LibvirtdUnavailable(f"no answer from the libvirtd helper\n{self.tail()}")
        return result[0].strip() or "(helper ended)"

    def stop_daemon(self, how: str = "stop") -> None:
        """``stop`` (SIGTERM, as a service manager would) or ``kill`` (SIGKILL) libvirtd; its
        QEMUs keep running."""
        answer = self.command(how)
        if not answer.startswith("stopped"):
            raise AssertionError(f"libvirtd did not stop: {answer}")

    def start_daemon(self) -> None:
        answer = self.command("start")
        if not answer.startswith("started"):
            raise AssertionError(f"libvirtd did not start again: {answer}\n{self.tail()}")
        self.pid = int(answer.split()[1])

    def qemu_pid(self, name: str) -> int | None:
        """The pid of the QEMU libvirt runs for ``name`` (from libvirt's pid file)."""
        try:
            return int((self.root / "run" / "qemu" / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def tail(self, lines: int = 30) -> str:
        text = []
        for path in (self.root / "serve.log", self.log):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def close(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert process.stdin is not None
                process.stdin.write("quit\n")
                process.stdin.close()
            try:
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process is not None and process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(self.root, ignore_errors=True)


def domain_xml(
    name: str,
    image: Path,
    serial: Path,
    *,
    on_poweroff: str = "destroy",
    on_reboot: str = "restart",
    on_crash: str = "destroy",
    suspend_to_mem: bool = False,
) -> str:
    """A TCG domain that boots one of the test guests (``qemu-guests.md`` §6.3), its COM1
    into ``serial`` (the guests print their boot marker there) and the ISA pvpanic device."""
    pm = "<pm><suspend-to-mem enabled='yes'/></pm>" if suspend_to_mem else ""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  {pm}
  <on_poweroff>{on_poweroff}</on_poweroff>
  <on_reboot>{on_reboot}</on_reboot>
  <on_crash>{on_crash}</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{image}'/>
      <target dev='hda' bus='ide'/>
    </disk>
    <serial type='file'><source path='{serial}'/><target port='0'/></serial>
    <panic model='isa'><address type='isa' iobase='0x505'/></panic>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


# -- the helper's side (run as a script inside the new mount namespace) -------------------------


PR_SET_CHILD_SUBREAPER = 36


class _Reaper:
    """Reaps every child at once (a thread in ``os.waitpid(-1)``), remembering exits."""

    def __init__(self) -> None:
        self.exited: dict[int, int] = {}
        self.changed = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            with self.changed:
                self.exited[pid] = status
                self.changed.notify_all()

    def wait(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while pid not in self.exited:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True


def _children() -> list[int]:
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == me:
                found.append(int(entry))
    return found


def _prepare(root: Path) -> None:
    for name, target in MOUNTS.items():
        source = root / name
        source.mkdir(parents=True, exist_ok=True)
        Path(target).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(source), target], check=True)
    (root / "etc" / "libvirtd.conf").write_text(LIBVIRTD_CONF)
    (root / "etc" / "qemu.conf").write_text(QEMU_CONF)
    (root / "etc" / "virtlogd.conf").write_text("")
    for sub in ("run/qemu", "lib/qemu", "log/qemu", "cache/qemu"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        # The QEMU driver looks its built-in user up even when qemu.conf says root.
        for name, line in (
            ("passwd", "libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin\n"),
            ("group", "libvirt-qemu:x:64055:\nkvm:x:64056:\nlibvirt:x:64057:\n"),
        ):
            copy = root / name
            copy.write_text(Path(f"/etc/{name}").read_text() + line)
            subprocess.run(["mount", "--bind", str(copy), f"/etc/{name}"], check=True)


def _spawn(argv: list[str], log: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, text=True)


def _ready(path: Path, process: subprocess.Popen[str], reaper: _Reaper) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if process.pid in reaper.exited:
            return False
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
                return True
            except OSError:
                pass
        time.sleep(0.02)
    return False


def serve(root: Path) -> int:
    """The subreaper: set up, run virtlogd and libvirtd, obey commands, clean up."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("error: prctl(PR_SET_CHILD_SUBREAPER) failed", flush=True)
        return 1
    reaper = _Reaper()
    log = (root / "libvirtd.log").open("a")
    try:
        _prepare(root)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"error: cannot prepare the namespace: {exc}", flush=True)
        return 1
    virtlogd = _spawn(
        [_which("virtlogd") or "virtlogd", "--pid-file", str(root / "virtlogd.pid")], log
    )
    daemon: subprocess.Popen[str] | None = None

    def start() -> str:
        nonlocal daemon
        daemon = _spawn(
            [_which("libvirtd") or "libvirtd", "--pid-file", str(root / "libvirtd.pid")], log
        )
        if not _ready(root / "run" / "libvirt-sock", daemon, reaper):
            return "error: libvirtd did not accept connections"
        return f"started {daemon.pid}"

    def stop(how: signal.Signals) -> str:
        if daemon is None or daemon.pid in reaper.exited:
            return "stopped (was not running)"
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, how)
        if not reaper.wait(daemon.pid, WAIT):
            os.kill(daemon.pid, signal.SIGKILL)
            reaper.wait(daemon.pid, 5)
        (root / "run" / "libvirt-sock").unlink(missing_ok=True)
        return "stopped"

    print(start(), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "start":
                print(start(), flush=True)
            elif command in ("stop", "kill"):
                print(stop(signal.SIGTERM if command == "stop" else signal.SIGKILL), flush=True)
            elif command == "quit":
                break
            else:
                print(f"error: unknown command {command!r}", flush=True)
    finally:
        stop(signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.kill(virtlogd.pid, signal.SIGTERM)
        reaper.wait(virtlogd.pid, 5)
        deadline = time.monotonic() + WAIT
        while (left := _children()) and time.monotonic() < deadline:
            for pid in left:  # QEMUs libvirtd left behind, now ours
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
    return 0


def _main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "serve":
        return serve(Path(argv[1]))
    print("usage: libvirtd.py serve DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
