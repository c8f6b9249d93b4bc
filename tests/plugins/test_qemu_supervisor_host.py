"""The ``qemu`` source on real QEMU guests, what the host does: ``ctl`` shutdown (honoured,
ignored, escalated), destroy, signals from outside, SIGKILL after ``kill_timeout``, suspend and
resume, reset, start after a stop, a QEMU that outlives the bridge, and refused intents.

Each test runs a bridge in its own event loop with a fresh state directory; expected sequences
are exact (event/detail and state/reason after each event, with libvirt's numbers), except
that each run of REBOOT after a reset is folded into ``REBOOT+`` (SeaBIOS resets once or twice
more on its own). The control socket is what ``virtbridge ctl`` uses; the CLI itself is
exercised in ``test_record_and_ctl``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.plugins.qemu_harness import (
    BOOTED,
    DESTROYED,
    GUEST_SHUTDOWN,
    KILLED,
    BridgeRun,
    run,
    squash,
    until,
)
from tests.plugins.qemu_processes import alive, boots, supervised

Images = dict[str, Path]

REQUESTED = "SHUTDOWN/REQUESTED [6/100] -> RUNNING/SHUTDOWN_REQUESTED [1/100]"
POWERDOWN = "QEMU_MONITOR POWERDOWN -> RUNNING/SHUTDOWN_REQUESTED [1/100]"
REBOOTED = "REBOOT+ -> RUNNING/BOOTED [1/1]"


# -- the host stops it ----------------------------------------------------------------------


def test_ctl_shutdown_of_a_cooperative_guest(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "acpi")]) as r:
            await r.booted()
            await boots(tmp_path, "acpi", 1)  # before that, nobody listens to the button
            answer = await r.ctl("vm", "shutdown")
            assert answer == {
                "ok": True,
                "error": None,
                "events": ["vm(1) LIFECYCLE SHUTDOWN/REQUESTED -> RUNNING/SHUTDOWN_REQUESTED"],
                "state": "RUNNING/SHUTDOWN_REQUESTED",
            }
            await r.wait_for("vm", GUEST_SHUTDOWN[-1])
            await r.gone()
            await r.settle()
            assert r.lines() == [*BOOTED, REQUESTED, POWERDOWN, *GUEST_SHUTDOWN]

    run(main())


def test_shutdown_ignored_then_optionally_destroyed(qemu: Images, tmp_path: Path) -> None:
    """Two idle guests that ignore the power button: one is only reported, one destroyed."""
    sources = [
        supervised(qemu, tmp_path, "idle", "ignores", shutdown_timeout=1),
        supervised(
            qemu, tmp_path, "idle", "destroyed", shutdown_timeout=1, on_shutdown_timeout="destroy"
        ),
    ]
    ignored = "SHUTDOWN/IGNORED [6/101] -> RUNNING/BOOTED [1/1]"

    async def main() -> None:
        async with BridgeRun(tmp_path, sources=sources) as r:
            await asyncio.gather(r.booted("ignores"), r.booted("destroyed"))
            asked = time.monotonic()
            answers = await asyncio.gather(
                r.ctl("ignores", "shutdown"), r.ctl("destroyed", "shutdown")
            )
            assert [a["state"] for a in answers] == ["RUNNING/SHUTDOWN_REQUESTED"] * 2
            await r.wait_for("ignores", ignored)
            assert time.monotonic() - asked >= 0.9  # not before the timeout
            await r.wait_for("destroyed", DESTROYED[-1])
            await r.gone("destroyed")
            await r.settle()
            assert r.lines("ignores") == [*BOOTED, REQUESTED, POWERDOWN, ignored]
            assert r.lines("destroyed") == [*BOOTED, REQUESTED, POWERDOWN, ignored, *DESTROYED]
            assert (await r.state("ignores"))[:2] == ("RUNNING", "BOOTED")
            assert r.running("ignores")

    run(main())


def test_ctl_destroy(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "idle")]) as r:
            await r.booted()
            answer = await r.ctl("vm", "destroy")
            # Like libvirt's virDomainDestroy, ctl returns once the domain is off.
            assert answer == {
                "ok": True,
                "error": None,
                "events": [
                    "vm(1) LIFECYCLE SHUTDOWN/HOST -> SHUTDOWN/UNKNOWN",
                    "vm(-1) LIFECYCLE STOPPED/DESTROYED -> SHUTOFF/DESTROYED",
                ],
                "state": None,
            }
            await r.gone()
            await r.settle()
            assert r.lines() == BOOTED + DESTROYED

    run(main())


def test_sigterm_from_outside_is_a_host_shutdown(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "idle")]) as r:
            await r.booted()
            os.kill(r.qemu("vm").emulator.pid, signal.SIGTERM)  # type: ignore[union-attr]
            await r.gone()
            await r.settle()
            assert r.lines() == [
                *BOOTED,
                "SHUTDOWN/HOST [6/2] -> SHUTDOWN/UNKNOWN [4/0]",
                "STOPPED/SHUTDOWN [5/0] -> SHUTOFF/SHUTDOWN [5/1]",
            ]

    run(main())


def test_sigkill_from_outside_is_a_failure(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "idle")]) as r:
            await r.booted()
            os.kill(r.qemu("vm").emulator.pid, signal.SIGKILL)  # type: ignore[union-attr]
            await r.gone()
            await r.settle()
            assert r.lines() == BOOTED + KILLED
            last = r.events()[-1]
            assert (last["state_code"], last["reason_code"]) == (5, 3)  # SHUTOFF/CRASHED
            assert r.qemu("vm").emulator.exit.signal_number == signal.SIGKILL  # type: ignore[union-attr]

    run(main())


def test_destroy_escalates_to_sigkill_after_kill_timeout(qemu: Images, tmp_path: Path) -> None:
    """A QEMU that cannot act on SIGTERM (here: SIGSTOPped) is SIGKILLed after kill_timeout."""
    source = supervised(qemu, tmp_path, "idle", kill_timeout=0.5)

    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[source]) as r:
            await r.booted()
            emulator = r.qemu("vm").emulator
            assert emulator is not None
            os.kill(emulator.pid, signal.SIGSTOP)
            asked = time.monotonic()
            answer = await r.ctl("vm", "destroy")
            assert answer["ok"], answer
            await r.gone()
            assert time.monotonic() - asked >= 0.45
            assert emulator.exit is not None and emulator.exit.signal_number == signal.SIGKILL
            await r.settle()
            # QEMU never saw the SIGTERM, so it never said SHUTDOWN: no SHUTDOWN/HOST.
            assert r.lines() == [*BOOTED, DESTROYED[-1]]

    run(main())


# -- pause, reset, start ---------------------------------------------------------------------


def test_ctl_suspend_and_resume(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "idle")]) as r:
            await r.booted()
            paused = await r.ctl("vm", "suspend")
            assert (paused["events"], paused["state"]) == (
                ["vm(1) LIFECYCLE SUSPENDED/PAUSED -> PAUSED/USER"],
                "PAUSED/USER",
            )
            resumed = await r.ctl("vm", "resume")
            assert (resumed["events"], resumed["state"]) == (
                ["vm(1) LIFECYCLE RESUMED/UNPAUSED -> RUNNING/UNPAUSED"],
                "RUNNING/UNPAUSED",
            )
            await r.settle()
            assert r.lines() == [
                *BOOTED,
                "SUSPENDED/PAUSED [3/0] -> PAUSED/USER [3/1]",
                "RESUMED/UNPAUSED [4/0] -> RUNNING/UNPAUSED [1/5]",
            ]
            assert await r.state("vm") == ("RUNNING", "UNPAUSED", 1)

    run(main())


def test_ctl_reset_is_reboot_events_and_keeps_the_state(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "idle")]) as r:
            await boots(tmp_path, "idle", 1)
            await r.booted()
            assert (await r.ctl("vm", "reset"))["ok"]
            await boots(tmp_path, "idle", 2)
            await r.settle()
            assert squash(r.lines()) == [*BOOTED, REBOOTED]
            assert 2 <= r.lines().count("REBOOT -> RUNNING/BOOTED [1/1]") <= 4  # 1 + SeaBIOS' 1-3
            assert await r.state("vm") == ("RUNNING", "BOOTED", 1)

    run(main())


def test_ctl_start_after_a_stop_gives_a_new_larger_id(qemu: Images, tmp_path: Path) -> None:
    source = supervised(qemu, tmp_path, "idle", autostart=False)

    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[source]) as r:
            await asyncio.sleep(0.2)
            assert r.lines() == [] and r.qemu("vm").emulator is None  # autostart = false
            first = await r.ctl("vm", "start")
            assert first["ok"] and first["state"] == "RUNNING/BOOTED", first
            assert (await r.ctl("vm", "destroy"))["ok"]
            await r.gone()
            second = await r.ctl("vm", "start")
            assert second["events"] == [
                "vm(2) LIFECYCLE RESUMED/UNPAUSED -> RUNNING/BOOTED",
                "vm(2) LIFECYCLE STARTED/BOOTED -> RUNNING/BOOTED",
            ]
            again = await r.ctl("vm", "start")
            assert again["ok"] is False
            assert again["error"] == "Requested operation is not valid: domain is already running"
            await r.settle()
            assert r.lines() == BOOTED + DESTROYED + BOOTED
            assert [e["id"] for e in r.events()] == [1, 1, 1, -1, 2, 2]
            assert await r.state("vm") == ("RUNNING", "BOOTED", 2)
            assert r.running()

    run(main())


def test_qemu_outlives_the_bridge_and_is_found_again(qemu: Images, tmp_path: Path) -> None:
    """on_bridge_stop = "keep" (the default): QEMU survives a bridge restart, as libvirt's
    guests survive libvirtd's, and the next bridge takes it over silently."""
    source = supervised(qemu, tmp_path, "idle")

    async def main() -> None:
        first = BridgeRun(tmp_path, sources=[source], name="first")
        async with first:
            await first.booted()
            emulator = first.qemu("vm").emulator
            assert emulator is not None
            first.qemu_sources.clear()  # keep this QEMU (the `qemu` fixture kills it at the end)
        assert alive(emulator.pid)
        second = BridgeRun(tmp_path, sources=[source], name="second")
        second.data["bridge"]["state_dir"] = str(first.state_dir)
        second.state_dir = first.state_dir
        async with second:
            await until(lambda: second.qemu("vm").emulator is not None, what="QEMU re-found")
            assert second.qemu("vm").emulator.pid == emulator.pid  # type: ignore[union-attr]
            assert await second.state("vm") == ("RUNNING", "BOOTED", 1)
            assert second.lines() == []  # a reconnect is silent, as libvirt's is
            assert (await second.ctl("vm", "destroy"))["ok"]
            await until(lambda: not alive(emulator.pid), what="the re-found QEMU to exit")
            await second.settle()
            assert second.lines() == DESTROYED

    run(main())


@pytest.mark.parametrize("verb", ["suspend", "resume", "reset", "destroy", "shutdown"])
def test_ctl_on_a_stopped_domain_is_refused(qemu: Images, tmp_path: Path, verb: str) -> None:
    source = supervised(qemu, tmp_path, "idle", autostart=False)

    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[source]) as r:
            answer = await r.ctl("vm", verb)
            assert answer["ok"] is False
            assert answer["error"] == "Requested operation is not valid: domain is not running"
            assert r.lines() == []

    run(main())
