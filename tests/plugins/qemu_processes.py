"""QEMU processes for the tests that prove the QMP sources on real guests.

* :func:`guest_command` / :func:`supervised`: the command line of a guest for the ``qemu``
  source (qemu-guests.md, Part 1), and the source's table.
* :class:`Fleet`: guests a test starts itself for attach mode, each with a second QMP monitor
  the test drives it through, all killed on exit.
* :func:`kill_stray_qemu`: the safety net that SIGKILLs and reaps every QEMU this process
  started, whatever the test did.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.guests import boot_marker
from tests.support.qemu import QemuProcess, connect_qmp, spawn_qemu, wait_for_serial_async
from virtbridge_qmp import QmpClient


def qemu_children() -> list[int]:
    """PIDs of the QEMU processes that are children of this (test) process."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == me and comm.startswith("qemu-system"):
            found.append(int(entry))
    return found


def kill_stray_qemu(timeout: float = 5.0) -> list[int]:
    """SIGKILL every QEMU child of this process and reap it; the PIDs that were still there."""
    strays = qemu_children()
    for pid in strays:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    for pid in strays:
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break  # reaped by its owner (a Popen or an asyncio child watcher)
            if done:
                break
            time.sleep(0.01)
    return strays


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def guest_command(image: Path, serial: Path, *extra: str) -> list[str]:
    """QEMU's command line for a supervised guest (qemu-guests.md, Part 1), without the QMP
    monitor and ``-no-shutdown``, which the ``qemu`` source adds itself."""
    return [
        "qemu-system-x86_64",
        "-nodefaults",
        "-display", "none",
        "-machine", "pc,accel=tcg",
        "-m", "32",
        "-drive", f"file={image},format=raw,if=ide,snapshot=on",
        "-serial", f"file:{serial}",
        "-device", "pvpanic",
        *extra,
    ]  # fmt: skip


def supervised(
    images: dict[str, Path], tmp: Path, variant: str, name: str = "vm", **options: Any
) -> dict[str, Any]:
    """A ``qemu`` source table for ``variant``; the guest's serial log is ``tmp/<name>.serial``
    (see :func:`serial`)."""
    command = guest_command(images[variant], serial(tmp, name))
    return {"type": "qemu", "name": name, "command": command, **options}


def serial(tmp: Path, name: str = "vm") -> Path:
    return tmp / f"{name}.serial"


async def boots(tmp: Path, variant: str, count: int, name: str = "vm") -> None:
    """Wait until the supervised guest ``name`` printed its boot marker ``count`` times."""
    await wait_for_serial_async(serial(tmp, name), boot_marker(variant), count=count)


class Fleet:
    """QEMU processes a test starts itself (for attach mode), each with a second QMP monitor
    (``<tag>.mon``) the test drives it through; ``<tag>.qmp`` is the one the bridge attaches
    to. ``async with Fleet(images, directory) as fleet:``; on exit every monitor is closed and
    every process killed and reaped."""

    def __init__(self, images: dict[str, Path], directory: Path) -> None:
        self.images = images
        self.dir = directory
        self.processes: dict[str, QemuProcess] = {}
        self.monitors: dict[str, QmpClient] = {}
        self._old: list[QemuProcess] = []

    async def __aenter__(self) -> Fleet:
        self.dir.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for client in self.monitors.values():
            with contextlib.suppress(Exception):
                await client.close()
        for process in [*self.processes.values(), *self._old]:
            with contextlib.suppress(Exception):
                await process.kill()

    async def spawn(self, variant: str, tag: str, *extra: str) -> QemuProcess:
        """Start ``variant`` as ``tag`` (replacing an earlier process of that tag, which must
        have ended)."""
        if tag in self.processes:
            self._old.append(self.processes.pop(tag))
            old = self.monitors.pop(tag, None)
            if old is not None:
                await old.close()
        monitor = self.dir / f"{tag}.mon"
        monitor.unlink(missing_ok=True)
        process = await spawn_qemu(
            self.images[variant],
            self.dir,
            ["-qmp", f"unix:{monitor},server=on,wait=off", *extra],
            tag=tag,
        )
        self.processes[tag] = process
        return process

    async def monitor(self, tag: str) -> QmpClient:
        """The test's own monitor of ``tag`` (connected once, then reused)."""
        if tag not in self.monitors:
            self.monitors[tag] = await connect_qmp(self.dir / f"{tag}.mon")
        return self.monitors[tag]

    def __getitem__(self, tag: str) -> QemuProcess:
        return self.processes[tag]
