"""The ``qemu`` source on real QEMU guests, what the guest does: it launches QEMU with
``-S -no-shutdown``, and the events a ``jsonl`` sink writes are libvirt's, code for code, for
every path a guest takes by itself (power off, reboot, panic under each on_crash policy,
crash-loaded, S3). What the host does is in ``test_qemu_supervisor_host``.

Each test runs a bridge in its own event loop with a fresh state directory; expected sequences
are exact (event/detail and state/reason after each event, with libvirt's numbers), except
that each run of REBOOT after a reset is folded into ``REBOOT+`` (SeaBIOS resets once or twice
more on its own). The control socket is what ``virtbridge ctl`` uses; the CLI itself is
exercised in ``test_record_and_ctl``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.plugins.qemu_harness import (
    BOOTED,
    DESTROYED,
    GUEST_SHUTDOWN,
    BridgeRun,
    run,
    squash,
)
from tests.plugins.qemu_processes import boots, supervised

Images = dict[str, Path]

REBOOTED = "REBOOT+ -> RUNNING/BOOTED [1/1]"
PANICKED = "CRASHED/PANICKED [8/0] -> CRASHED/PANICKED [6/1]"


# -- the guest stops itself ------------------------------------------------------------------


def test_guest_power_off_is_shutdown_then_stopped_never_suspended(
    qemu: Images, tmp_path: Path
) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "poweroff")]) as r:
            await r.wait_for("vm", GUEST_SHUTDOWN[-1])
            await r.gone()
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
            assert r.running()

    run(main())


def test_guest_reboot_with_on_reboot_destroy_is_a_shutdown(qemu: Images, tmp_path: Path) -> None:
    source = supervised(qemu, tmp_path, "reboot", on_reboot="destroy")

    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[source]) as r:
            await r.wait_for("vm", GUEST_SHUTDOWN[-1])
            await r.gone()
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
            assert r.running()
            assert await r.state("vm") == ("RUNNING", "BOOTED", 1)
            answer = await r.ctl("vm", "destroy")
            assert answer["ok"], answer
            await r.gone()
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
            assert r.running()
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
            await asyncio.gather(r.gone("destroy"), r.gone("coredump-destroy"))
            await r.settle()
            for domain in ("destroy", "coredump-destroy"):
                assert r.lines(domain) == BOOTED + stopped, domain
            for domain in ("restart", "coredump-restart"):
                assert squash(r.lines(domain)) == BOOTED + restarted, domain
                assert (await r.state(domain))[:2] == ("RUNNING", "CRASHED")
                assert r.running(domain)
            assert r.lines("preserve") == [*BOOTED, PANICKED]
            assert (await r.state("preserve"))[:2] == ("CRASHED", "PANICKED")
            assert r.running("preserve")
            # A dump for the coredump-* policies only, under the state directory.
            for domain in ("coredump-destroy", "coredump-restart"):
                found = dumps(r, domain)
                assert len(found) == 1 and found[0].stat().st_size > 0, domain
            for domain in ("destroy", "preserve", "restart"):
                assert dumps(r, domain) == [], domain
            # A preserved crash is destroyed like any running domain.
            assert (await r.ctl("preserve", "destroy"))["ok"]
            await r.gone("preserve")
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
