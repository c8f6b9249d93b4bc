"""The ``qemu`` source on real QEMU guests: it launches QEMU with ``-S -no-shutdown``, and the
events a ``jsonl`` sink writes are libvirt's, code for code, for every lifecycle path.

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
    alive,
    run,
    serial,
    squash,
    supervised,
    until,
)
from tests.support.guests import boot_marker
from tests.support.qemu import wait_for_serial_async

Images = dict[str, Path]

REQUESTED = "SHUTDOWN/REQUESTED [6/100] -> RUNNING/SHUTDOWN_REQUESTED [1/100]"
POWERDOWN = "QEMU_MONITOR POWERDOWN -> RUNNING/SHUTDOWN_REQUESTED [1/100]"
REBOOTED = "REBOOT+ -> RUNNING/BOOTED [1/1]"
PANICKED = "CRASHED/PANICKED [8/0] -> CRASHED/PANICKED [6/1]"


async def booted(run_: BridgeRun, domain: str = "vm") -> None:
    await run_.wait_for(domain, BOOTED[-1])


async def gone(run_: BridgeRun, domain: str = "vm") -> None:
    """The domain's QEMU has exited and been reaped, and its pid file is gone."""
    emulator = run_.qemu(domain).emulator
    assert emulator is not None
    await until(lambda: emulator.exit is not None, what=f"QEMU of {domain!r} to exit")
    assert not alive(emulator.pid)
    assert not emulator.pidfile.exists()


def running(run_: BridgeRun, domain: str = "vm") -> bool:
    emulator = run_.qemu(domain).emulator
    return emulator is not None and emulator.alive and alive(emulator.pid)


async def boots(tmp: Path, variant: str, count: int, domain: str = "vm") -> None:
    """Wait until the guest printed its boot marker ``count`` times (it really rebooted)."""
    await wait_for_serial_async(serial(tmp, domain), boot_marker(variant), count=count)


# -- the guest stops itself ------------------------------------------------------------------


def test_guest_power_off_is_shutdown_then_stopped_never_suspended(
    qemu: Images, tmp_path: Path
) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "poweroff")]) as r:
            await r.wait_for("vm", GUEST_SHUTDOWN[-1])
            await gone(r)
            await r.settle()
            assert r.lines() == BOOTED + GUEST_SHUTDOWN
            assert not any("SUSPENDED" in line for line in r.lines())  # the seed's bug
            last = r.events()[-1]
            assert (last["state"], last["reason"]) == ("SHUTOFF", "SHUTDOWN")
            assert {e["id"] for e in r.events()} == {1}  # STOPPED/SHUTDOWN keeps the live id
            exit_ = r.qemu("vm").emulator.exit  # type: ignore[union-attr]
            assert exit_ is not None and exit_.status == 0  # SIGTERM after the shutdown

    run(main())


def test_guest_reboot_is_reboot_events_only(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "reboot")]) as r:
            await boots(tmp_path, "reboot", 2)
            await r.settle()
            assert squash(r.lines()) == [*BOOTED, REBOOTED]
            assert await r.state("vm") == ("RUNNING", "BOOTED", 1)
            assert running(r)

    run(main())


def test_guest_reboot_with_on_reboot_destroy_is_a_shutdown(qemu: Images, tmp_path: Path) -> None:
    source = supervised(qemu, tmp_path, "reboot", on_reboot="destroy")

    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[source]) as r:
            await r.wait_for("vm", GUEST_SHUTDOWN[-1])
            await gone(r)
            await r.settle()
            assert r.lines() == BOOTED + GUEST_SHUTDOWN

    run(main())


def test_power_off_with_on_poweroff_restart_is_a_fake_reboot(qemu: Images, tmp_path: Path) -> None:
    source = supervised(qemu, tmp_path, "poweroff-once", on_poweroff="restart")

    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[source]) as r:
            await boots(tmp_path, "poweroff-once", 2)
            await r.settle()
            assert squash(r.lines()) == [*BOOTED, REBOOTED]  # no SHUTDOWN, no STOPPED
            assert running(r)
            assert await r.state("vm") == ("RUNNING", "BOOTED", 1)
            answer = await r.ctl("vm", "destroy")
            assert answer["ok"], answer
            await gone(r)
            await r.settle()
            # libvirt 9.0: after a fake reboot, destroy shows no SHUTDOWN/HOST.
            assert squash(r.lines()) == [*BOOTED, REBOOTED, DESTROYED[-1]]

    run(main())


def test_crash_loaded_keeps_running(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "crashloaded")]) as r:
            await r.wait_for("vm", "CRASHED/CRASHLOADED [8/1] -> RUNNING/BOOTED [1/1]")
            await r.settle()
            assert r.lines() == [*BOOTED, "CRASHED/CRASHLOADED [8/1] -> RUNNING/BOOTED [1/1]"]
            assert running(r)
            assert await r.state("vm") == ("RUNNING", "BOOTED", 1)

    run(main())


def test_every_on_crash_policy(qemu: Images, tmp_path: Path) -> None:
    """One bridge, five panicking guests, one per policy, side by side."""
    sources = [
        supervised(qemu, tmp_path, "panic", "destroy", on_crash="destroy"),
        supervised(qemu, tmp_path, "panic", "coredump-destroy", on_crash="coredump-destroy"),
        supervised(qemu, tmp_path, "panic", "preserve", on_crash="preserve"),
        supervised(qemu, tmp_path, "panic-once", "restart", on_crash="restart"),
        supervised(qemu, tmp_path, "panic-once", "coredump-restart", on_crash="coredump-restart"),
    ]
    stopped = [PANICKED, "STOPPED/CRASHED [5/2] -> SHUTOFF/CRASHED [5/3]"]
    restarted = [
        "SUSPENDED/PAUSED [3/0] -> PAUSED/UNKNOWN [3/0]",  # QEMU's STOP, as libvirt shows it
        PANICKED,
        "REBOOT+ -> CRASHED/PANICKED [6/1]",
        "RESUMED/UNPAUSED [4/0] -> RUNNING/CRASHED [1/9]",
        "REBOOT+ -> RUNNING/CRASHED [1/9]",
    ]

    def dumps(r: BridgeRun, domain: str) -> list[Path]:
        return sorted((r.state_dir / "qemu" / domain / "dumps").glob("*.core"))

    async def main() -> None:
        async with BridgeRun(tmp_path, sources=sources) as r:
            await asyncio.gather(
                r.wait_for("destroy", stopped[-1]),
                r.wait_for("coredump-destroy", stopped[-1]),
                r.wait_for("preserve", PANICKED),
                boots(tmp_path, "panic-once", 2, "restart"),
                boots(tmp_path, "panic-once", 2, "coredump-restart"),
            )
            await asyncio.gather(gone(r, "destroy"), gone(r, "coredump-destroy"))
            await r.settle()
            for domain in ("destroy", "coredump-destroy"):
                assert r.lines(domain) == BOOTED + stopped, domain
            for domain in ("restart", "coredump-restart"):
                assert squash(r.lines(domain)) == BOOTED + restarted, domain
                assert (await r.state(domain))[:2] == ("RUNNING", "CRASHED")
                assert running(r, domain)
            assert r.lines("preserve") == [*BOOTED, PANICKED]
            assert (await r.state("preserve"))[:2] == ("CRASHED", "PANICKED")
            assert running(r, "preserve")
            # A dump for the coredump-* policies only, under the state directory.
            for domain in ("coredump-destroy", "coredump-restart"):
                found = dumps(r, domain)
                assert len(found) == 1 and found[0].stat().st_size > 0, domain
            for domain in ("destroy", "preserve", "restart"):
                assert dumps(r, domain) == [], domain
            # A preserved crash is destroyed like any running domain.
            assert (await r.ctl("preserve", "destroy"))["ok"]
            await gone(r, "preserve")
            await r.settle()
            assert r.lines("preserve") == [*BOOTED, PANICKED, *DESTROYED]

    run(main())


def test_guest_pm_suspend_and_wakeup(qemu: Images, tmp_path: Path) -> None:
    suspended = [
        "PMSUSPEND/0 -> PMSUSPENDED/UNKNOWN [7/0]",
        "PMSUSPENDED/MEMORY [7/0] -> PMSUSPENDED/UNKNOWN [7/0]",
    ]
    woken = [
        "PMWAKEUP/0 -> RUNNING/WAKEUP [1/8]",
        "STARTED/WAKEUP [2/4] -> RUNNING/WAKEUP [1/8]",
        "REBOOT+ -> RUNNING/WAKEUP [1/8]",  # SeaBIOS has no waking vector: it reboots
    ]

    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "suspend")]) as r:
            await r.wait_for("vm", suspended[-1])
            await r.settle()
            assert r.lines() == BOOTED + suspended
            assert await r.state("vm") == ("PMSUSPENDED", "UNKNOWN", 1)
            answer = await r.ctl("vm", "pm-wakeup")
            assert answer["ok"], answer
            await boots(tmp_path, "suspend", 2)
            await r.settle()
            assert squash(r.lines()) == BOOTED + suspended + woken
            assert await r.state("vm") == ("RUNNING", "WAKEUP", 1)

    run(main())


# -- the host stops it -----------------------------------------------------------------------


def test_ctl_shutdown_of_a_cooperative_guest(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "acpi")]) as r:
            await booted(r)
            await boots(tmp_path, "acpi", 1)  # before that, nobody listens to the button
            answer = await r.ctl("vm", "shutdown")
            assert answer == {
                "ok": True,
                "error": None,
                "events": ["vm(1) LIFECYCLE SHUTDOWN/REQUESTED -> RUNNING/SHUTDOWN_REQUESTED"],
                "state": "RUNNING/SHUTDOWN_REQUESTED",
            }
            await r.wait_for("vm", GUEST_SHUTDOWN[-1])
            await gone(r)
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
            await asyncio.gather(booted(r, "ignores"), booted(r, "destroyed"))
            asked = time.monotonic()
            answers = await asyncio.gather(
                r.ctl("ignores", "shutdown"), r.ctl("destroyed", "shutdown")
            )
            assert [a["state"] for a in answers] == ["RUNNING/SHUTDOWN_REQUESTED"] * 2
            await r.wait_for("ignores", ignored)
            assert time.monotonic() - asked >= 0.9  # not before the timeout
            await r.wait_for("destroyed", DESTROYED[-1])
            await gone(r, "destroyed")
            await r.settle()
            assert r.lines("ignores") == [*BOOTED, REQUESTED, POWERDOWN, ignored]
            assert r.lines("destroyed") == [*BOOTED, REQUESTED, POWERDOWN, ignored, *DESTROYED]
            assert (await r.state("ignores"))[:2] == ("RUNNING", "BOOTED")
            assert running(r, "ignores")

    run(main())


def test_ctl_destroy(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "idle")]) as r:
            await booted(r)
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
            await gone(r)
            await r.settle()
            assert r.lines() == BOOTED + DESTROYED

    run(main())


def test_sigterm_from_outside_is_a_host_shutdown(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "idle")]) as r:
            await booted(r)
            os.kill(r.qemu("vm").emulator.pid, signal.SIGTERM)  # type: ignore[union-attr]
            await gone(r)
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
            await booted(r)
            os.kill(r.qemu("vm").emulator.pid, signal.SIGKILL)  # type: ignore[union-attr]
            await gone(r)
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
            await booted(r)
            emulator = r.qemu("vm").emulator
            assert emulator is not None
            os.kill(emulator.pid, signal.SIGSTOP)
            asked = time.monotonic()
            answer = await r.ctl("vm", "destroy")
            assert answer["ok"], answer
            await gone(r)
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
            await booted(r)
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
            await booted(r)
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
            await gone(r)
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
            assert running(r)

    run(main())


def test_qemu_outlives_the_bridge_and_is_found_again(qemu: Images, tmp_path: Path) -> None:
    """on_bridge_stop = "keep" (the default): QEMU survives a bridge restart, as libvirt's
    guests survive libvirtd's, and the next bridge takes it over silently."""
    source = supervised(qemu, tmp_path, "idle")

    async def main() -> None:
        first = BridgeRun(tmp_path, sources=[source], name="first")
        async with first:
            await booted(first)
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
