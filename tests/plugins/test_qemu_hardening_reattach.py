"""A QEMU left running by an earlier bridge whose monitor cannot be reached (QEMU hung, or its
one monitor connection held by someone else) is never orphaned and never joined by a second
QEMU on the same disk: it is killed through its pidfd, as libvirt kills on a failed reconnect
"to remove danger of it ending up running twice", and only once it is gone is the domain
reported stopped (SHUTOFF/CRASHED as libvirt leaves it, announced as the extension
STOPPED/VANISHED) and started again by autostart.

Before: the domain was declared STOPPED/FAILED at once and autostart launched a second QEMU on
the same disk while the first one still ran.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.plugins.qemu_harness import BOOTED, BridgeRun, run
from tests.plugins.qemu_processes import alive, serial, supervised
from tests.support.qemu import connect_qmp

Images = dict[str, Path]

VANISHED = "STOPPED/VANISHED [5/100] -> SHUTOFF/CRASHED [5/3]"
REACHED_WITHIN = 20.0
"""Bound for the whole takeover: the monitor's 5 s connect time-out, the kill, a new boot."""


def qmp_socket_of(pid: int) -> Path:
    """The monitor socket QEMU ``pid`` was started with, usable from here (a
    ``/proc/self/fd/N/...`` name is resolved through QEMU's own descriptor)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    option = argv[argv.index("-qmp") + 1]
    value = option[len("unix:") :].replace(",,", "\0").split(",")[0].replace("\0", ",")
    if value.startswith("/proc/self/fd/"):
        fd, name = value[len("/proc/self/fd/") :].split("/", 1)
        return Path(f"/proc/{pid}/fd/{fd}") / name
    return Path(value)


def qemus_running(marker: Path) -> list[int]:
    """Live QEMU processes whose command line mentions ``marker`` (the guest's serial log,
    unique to a test: so, QEMUs on this guest's disk)."""
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


async def leave_running(tmp_path: Path, source: dict[str, Any]) -> tuple[BridgeRun, int]:
    """A first bridge boots the guest and stops, leaving QEMU running (on_bridge_stop keep)."""
    first = BridgeRun(tmp_path, sources=[source], name="first")
    async with first:
        await first.booted()
        emulator = first.qemu("vm").emulator
        assert emulator is not None
        first.qemu_sources.clear()  # keep this QEMU (the `qemu` fixture kills it at the end)
    assert alive(emulator.pid)
    return first, emulator.pid


def next_bridge(tmp_path: Path, source: dict[str, Any], first: BridgeRun) -> BridgeRun:
    second = BridgeRun(tmp_path, sources=[source], name="second")
    second.data["bridge"]["state_dir"] = str(first.state_dir)
    second.state_dir = first.state_dir
    return second


async def takes_over(second: BridgeRun, tmp_path: Path, old: int) -> None:
    """What the second bridge must have done: the old QEMU killed, then exactly one new one."""
    await second.wait_for("vm", BOOTED[-1], timeout=REACHED_WITHIN)
    await second.settle()
    assert not alive(old)
    new = second.qemu("vm").emulator
    assert new is not None and new.pid != old
    assert qemus_running(serial(tmp_path)) == [new.pid]
    assert second.lines() == [VANISHED, *BOOTED]
    assert [event["id"] for event in second.events()] == [1, 2, 2]
    assert await second.state("vm") == ("RUNNING", "BOOTED", 2)


def test_a_hung_qemu_is_killed_before_the_domain_starts_again(qemu: Images, tmp_path: Path) -> None:
    """QEMU SIGSTOPped across the restart: no greeting within the time-out.  SIGTERM cannot
    act on a stopped process, so the SIGKILL after kill_timeout ends it."""
    source = supervised(qemu, tmp_path, "idle", kill_timeout=0.5)

    async def main() -> None:
        first, old = await leave_running(tmp_path, source)
        os.kill(old, signal.SIGSTOP)
        async with next_bridge(tmp_path, source, first) as second:
            await takes_over(second, tmp_path, old)

    run(main())


def test_a_qemu_whose_monitor_is_held_is_killed_before_the_domain_starts_again(
    qemu: Images, tmp_path: Path
) -> None:
    """Someone else holds QEMU's only monitor connection across the restart; the SIGTERM
    ends QEMU cleanly (the holder sees its SHUTDOWN and the end of the stream)."""
    source = supervised(qemu, tmp_path, "idle")

    async def main() -> None:
        first, old = await leave_running(tmp_path, source)
        holder = await connect_qmp(qmp_socket_of(old))
        try:
            started = time.monotonic()
            async with next_bridge(tmp_path, source, first) as second:
                await takes_over(second, tmp_path, old)
            assert time.monotonic() - started >= 4  # it waited for the greeting first
            assert holder.at_eof
            seen = [(await holder.next_event(timeout=1)).name]
            assert seen == ["SHUTDOWN"]
        finally:
            await holder.close()

    run(main())


def test_a_qemu_that_answers_is_still_taken_over_silently(qemu: Images, tmp_path: Path) -> None:
    """The ordinary case is unchanged: a QEMU that answers is re-found, nothing is killed or
    started, nothing is published."""
    source = supervised(qemu, tmp_path, "idle")

    async def main() -> None:
        first, old = await leave_running(tmp_path, source)
        async with next_bridge(tmp_path, source, first) as second:
            started = time.monotonic()
            answer = await second.ctl("vm", "start")  # waits for the re-found QEMU
            assert answer["error"] == "Requested operation is not valid: domain is already running"
            assert time.monotonic() - started < 4
            emulator = second.qemu("vm").emulator
            assert emulator is not None and emulator.pid == old
            await second.settle()
            assert second.lines() == []
            assert qemus_running(serial(tmp_path)) == [old]

    run(main())
