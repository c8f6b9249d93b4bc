"""The ``qemu`` source's monitor sockets cannot be hijacked.

They live in ``STATE_DIR/q`` (created 0700, refused when it is not ours or lets group or
others in), never in ``/tmp`` under a predictable name; a state directory too deep for
``sun_path`` is reached through a descriptor of that directory, not by moving the socket.  And
whoever listens on the path is believed only if the kernel says it is the emulator (the
listener's SO_PEERCRED pid): a fake QMP server in another process, answering the greeting and
sending a forged SHUTDOWN, is refused and logged before anything it says is read.

Before: a deep state directory put the socket at ``/tmp/virtbridge-<hash>.qmp`` and any
listener there was believed; a forged SHUTDOWN got the real QEMU a SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.qemu_harness import BOOTED, BridgeRun, run, until
from tests.plugins.qemu_processes import alive, supervised
from virtbridge_qmp import QmpClient, QmpConnectionError

Images = dict[str, Path]

VANISHED = "STOPPED/VANISHED [5/100] -> SHUTOFF/CRASHED [5/3]"

FAKE_QMP = r"""
import json, os, socket, sys
path, transcript = sys.argv[1], sys.argv[2]
def note(line):
    with open(transcript, "a") as f:
        f.write(line + "\n")
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(8)
print("listening", flush=True)
greeting = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}
replies = {
    "query-status": {"status": "running", "singlestep": False, "running": True},
    "query-uuid": {"UUID": "00000000-0000-0000-0000-000000000000"},
}
forged = {"event": "SHUTDOWN", "data": {"guest": True, "reason": "guest-shutdown"},
          "timestamp": {"seconds": 1, "microseconds": 0}}
while True:
    conn, _ = server.accept()
    note("connected")
    try:
        conn.sendall(json.dumps(greeting).encode() + b"\n")
        for line in conn.makefile("rb"):
            message = json.loads(line)
            command = message.get("execute")
            note("command " + str(command))
            reply = {"return": replies.get(command, {}), "id": message.get("id")}
            conn.sendall(json.dumps(reply).encode() + b"\n")
            if command == "query-status":
                conn.sendall(json.dumps(forged).encode() + b"\n")
                note("sent SHUTDOWN")
    except OSError as exc:
        note("error " + type(exc).__name__)
    note("closed")
    conn.close()
"""


class FakeQmp:
    """A QMP impostor in a process of its own, listening on ``path``; ``transcript()`` is what
    it saw."""

    def __init__(self, path: Path, transcript: Path) -> None:
        self.path = path
        self.log = transcript
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> FakeQmp:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FAKE_QMP, str(self.path), str(self.log),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 10)
        assert line == b"listening\n", line
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def transcript(self) -> list[str]:
        try:
            return self.log.read_text().splitlines()
        except FileNotFoundError:
            return []


def qmp_socket_of(pid: int) -> Path:
    """The monitor socket QEMU ``pid`` was started with (its ``-qmp unix:PATH,...``), as a path
    this process can use (a ``/proc/self/fd/N/...`` name is resolved through QEMU's own fds)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    option = argv[argv.index("-qmp") + 1]
    assert option.startswith("unix:"), option
    value = option[len("unix:") :].replace(",,", "\0").split(",")[0].replace("\0", ",")
    if value.startswith("/proc/self/fd/"):
        fd, name = value[len("/proc/self/fd/") :].split("/", 1)
        return Path(os.readlink(f"/proc/{pid}/fd/{fd}")) / name
    return Path(value)


def qemus_running(marker: Path) -> list[int]:
    """Live QEMU processes whose command line mentions ``marker`` (a guest's serial log)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        mentioned = any(str(marker).encode() in arg for arg in argv)
        if b"qemu-system" in argv[0] and mentioned and alive(int(entry)):
            found.append(int(entry))
    return found


# -- the peer check itself -----------------------------------------------------------------


def test_a_qmp_listener_that_is_not_the_expected_process_is_refused(
    sockdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = sockdir / "vm.qmp"

    async def main() -> None:
        async with FakeQmp(path, sockdir / "fake.log") as fake:
            someone_else = os.getpid()
            client = QmpClient(path, peer_pid=someone_else)
            with pytest.raises(QmpConnectionError, match=f"served by pid {fake.pid}"):
                await client.connect()
            await until(lambda: "closed" in fake.transcript(), what="the fake to see the close")
            seen = fake.transcript()
            assert seen[0] == "connected" and seen[-1] == "closed", seen
            assert not [line for line in seen if line.startswith("command")]  # not a word sent
            assert client.greeting is None
            # The same listener, expected: accepted (the check is the pid, nothing else).
            async with QmpClient(path, peer_pid=fake.pid) as trusted:
                assert trusted.greeting is not None

    with caplog.at_level(logging.WARNING, logger="virtbridge.qmp"):
        run(main())
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and f"pid {os.getpid()}" in refusals[0], refusals


def test_peer_pid_needs_a_unix_socket() -> None:
    with pytest.raises(ValueError, match="peer_pid"):
        QmpClient(("127.0.0.1", 4444), peer_pid=1)


# -- the supervisor: a forged monitor is never believed ------------------------------------


def test_a_forged_monitor_found_after_a_restart_is_not_believed(
    qemu: Images, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Between two bridges, someone replaces QEMU's monitor socket with their own server, which
    answers like QEMU and then says SHUTDOWN.  The next bridge refuses it (wrong pid), so the
    real QEMU's monitor is unreachable: that QEMU is killed as after any failed reattach, and
    autostart starts the domain again.  No forged event is ever published."""
    source = supervised(qemu, tmp_path, "idle", kill_timeout=1)

    async def main() -> None:
        first = BridgeRun(tmp_path, sources=[source], name="first")
        async with first:
            await first.booted()
            emulator = first.qemu("vm").emulator
            assert emulator is not None
            first.qemu_sources.clear()  # keep this QEMU (the `qemu` fixture kills it at the end)
        old = emulator.pid
        socket_path = qmp_socket_of(old)
        socket_path.unlink()
        async with FakeQmp(socket_path, tmp_path / "fake.log") as fake:
            second = BridgeRun(tmp_path, sources=[source], name="second")
            second.data["bridge"]["state_dir"] = str(first.state_dir)
            second.state_dir = first.state_dir
            async with second:
                await second.wait_for("vm", BOOTED[-1], timeout=20)
                await second.settle()
                assert not any(line.startswith("SHUTDOWN") for line in second.lines())
                assert second.lines() == [VANISHED, *BOOTED]
                assert "command qmp_capabilities" not in fake.transcript()
                assert not alive(old)
                new = second.qemu("vm").emulator
                assert new is not None and new.pid != old
                assert qemus_running(tmp_path / "vm.serial") == [new.pid]

    with caplog.at_level(logging.WARNING):
        run(main())
    assert any(
        "refused" in r.getMessage() and "not the emulator" in r.getMessage() for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


# -- where the sockets are -------------------------------------------------------------------


class StateDirRun(BridgeRun):
    """A bridge with a state directory of the test's choosing; its control socket stays short
    (a deep state directory would not fit one)."""

    def __init__(self, tmp: Path, state_dir: Path, control: Path, **options: Any) -> None:
        super().__init__(tmp, **options)
        self.state_dir = state_dir
        self.control_path = control
        self.data["bridge"].update(state_dir=str(state_dir), control_socket=str(control))

    @property
    def control(self) -> Path:
        return self.control_path


@pytest.mark.parametrize("depth", ["short", "deep"])
def test_monitor_sockets_live_in_a_private_directory_of_the_state_dir(
    qemu: Images, tmp_path: Path, sockdir: Path, depth: str
) -> None:
    state_dir = sockdir / "state" if depth == "short" else tmp_path / ("d" * 90) / "state"
    before = set(Path("/tmp").glob("virtbridge-*.qmp"))

    async def main() -> None:
        sources = [supervised(qemu, tmp_path, "idle")]
        async with StateDirRun(tmp_path, state_dir, sockdir / "c.sock", sources=sources) as r:
            await r.booted()
            private = state_dir / "q"
            info = private.lstat()
            assert stat.S_ISDIR(info.st_mode)
            assert stat.S_IMODE(info.st_mode) == 0o700
            assert info.st_uid == os.geteuid()
            emulator = r.qemu("vm").emulator
            assert emulator is not None
            socket_path = qmp_socket_of(emulator.pid)
            assert socket_path.parent == private
            assert socket_path.is_socket()
            assert len(socket_path.name) <= 24
            assert set(Path("/tmp").glob("virtbridge-*.qmp")) == before

    assert len(str(state_dir / "q" / ("x" * 16 + ".qmp"))) > 107 or depth == "short"
    run(main())


@pytest.mark.parametrize("flaw", ["group-readable", "world-writable", "symlink", "not-ours"])
def test_a_socket_directory_others_can_reach_is_refused(
    qemu: Images, tmp_path: Path, flaw: str
) -> None:
    """Nothing is started and nothing is "repaired": the source stops and says why."""
    r = BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "idle")])
    private = r.state_dir / "q"
    r.state_dir.mkdir(parents=True)
    if flaw == "symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        private.symlink_to(elsewhere)
    else:
        private.mkdir()
        os.chmod(private, {"group-readable": 0o750, "world-writable": 0o777}.get(flaw, 0o700))
        if flaw == "not-ours":
            os.chown(private, 65534, 65534)
    mode_before = private.lstat().st_mode

    async def main() -> None:
        async with r:
            runner = r.sources["vm"]
            await until(lambda: runner.state == "failed", what=f"the source to refuse {private}")
            assert "refusing to use it for QMP sockets" in runner.error, runner.error
            assert str(private) in runner.error
            assert r.qemu("vm").emulator is None
            answer = await r.ctl("vm", "start")
            assert answer["ok"] is False and "QMP sockets" in answer["error"], answer
            assert qemus_running(tmp_path / "vm.serial") == []
            assert r.lines() == []

    run(main())
    assert private.lstat().st_mode == mode_before
