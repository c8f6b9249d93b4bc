"""The ``qmp`` source (attach mode) on real QEMU guests the tests start themselves (fake QMP
peers that misbehave are in ``test_qmp_attach_peers``).

Attach mode observes: it turns what the monitor says into libvirt's events, names each domain
(``domain =``, else QEMU's ``-name``, else the socket's file name), announces a process that
appears while the bridge runs (start events) and never signals a process. Each QEMU here has
a second monitor (``<tag>.mon``) through which the test acts, as another management tool would.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.plugins.qemu_harness import (
    BOOTED,
    GUEST_SHUTDOWN,
    HOST_SHUTDOWN,
    KILLED,
    PAUSED,
    UNPAUSED,
    BridgeRun,
    attach,
    run,
    squash,
    until,
)
from tests.plugins.qemu_processes import Fleet

Images = dict[str, Path]

REBOOTED = "REBOOT+ -> RUNNING/BOOTED [1/1]"


# -- real QEMU ---------------------------------------------------------------------------------


def test_events_are_attributed_to_the_right_domain(
    qemu: Images, tmp_path: Path, sockdir: Path
) -> None:
    """A socket with ``domain =``, and a glob of two: one named by ``-name``, one by its file."""
    uuid = "6a0b1b38-6f8c-4be2-9ad8-3d4f2f1c0c11"

    async def main() -> None:
        async with Fleet(qemu, sockdir) as one, Fleet(qemu, sockdir / "g") as many:
            await asyncio.gather(
                one.spawn("idle", "a", "-name", "alpha"),
                many.spawn("idle", "b", "-name", "bravo", "-uuid", uuid),
                many.spawn("idle", "c"),
            )
            for process in (one["a"], many["b"], many["c"]):
                await process.wait_for_boot("idle")
            sources = [
                {**attach(sockdir / "a.qmp", domain="first"), "name": "one"},
                {**attach(sockdir / "g" / "*.qmp"), "name": "many"},
            ]
            async with BridgeRun(tmp_path, sources=sources) as r:
                await until(lambda: r.attached("one")() and r.attached("many", 2)())
                # Found at start-up: a reconnect, silent as libvirt's, state from query-status.
                assert r.lines() == []
                assert (await r.state("first"))[:2] == ("RUNNING", "BOOTED")
                a, b, c = (await one.monitor("a"), await many.monitor("b"), await many.monitor("c"))
                await a.execute("stop")
                await a.execute("cont")
                await b.execute("system_reset")
                await c.execute("stop")
                await r.wait_for("first", UNPAUSED)
                await r.wait_for("c", PAUSED)
                await many["b"].wait_for_boot("idle", count=2)
                await r.settle()
                assert r.lines("first") == [PAUSED, UNPAUSED]
                assert squash(r.lines("bravo")) == [REBOOTED]
                assert r.lines("c") == [PAUSED]
                assert {e["domain"] for e in r.events()} == {"first", "bravo", "c"}
                assert {e["uuid"] for e in r.events("bravo")} == {uuid}
                assert {e["uuid"] for e in r.events("c")} == {None}
                assert (await r.state("c"))[:2] == ("PAUSED", "UNKNOWN")

    run(main())


def test_sigkill_then_a_new_process_on_the_same_socket(
    qemu: Images, tmp_path: Path, sockdir: Path
) -> None:
    async def main() -> None:
        async with Fleet(qemu, sockdir) as fleet:
            await fleet.spawn("idle", "vm")
            await fleet["vm"].wait_for_boot("idle")
            async with BridgeRun(tmp_path, sources=[attach(sockdir / "vm.qmp")]) as r:
                await until(r.attached())
                fleet["vm"].send_signal(signal.SIGKILL)
                await r.wait_for("vm", KILLED[0])
                await fleet.spawn("idle", "vm")  # same socket path: a new process
                await r.wait_for("vm", BOOTED[-1])
                await r.settle()
                assert r.lines() == KILLED + BOOTED
                ids = [e["id"] for e in r.events()]
                assert ids[0] == 1 and ids[1] == ids[2] > 1  # a new, larger id
                assert await r.state("vm") == ("RUNNING", "BOOTED", ids[1])

    run(main())


@pytest.mark.parametrize("how", ["socket", "glob"])
def test_attach_never_kills_a_guest_that_powered_off(
    qemu: Images, tmp_path: Path, sockdir: Path, how: str
) -> None:
    """QEMU appears after the bridge (started paused with ``-S``), is announced when ``cont``-ed,
    powers off, and stays there: the engine asks for SIGTERM, attach mode does not send it."""
    path = sockdir / ("vm.qmp" if how == "socket" else "*.qmp")

    async def main() -> None:
        async with Fleet(qemu, sockdir) as fleet, BridgeRun(tmp_path, sources=[attach(path)]) as r:
            await fleet.spawn("poweroff", "vm", "-S")
            await until(r.attached())
            assert r.lines() == []  # prelaunch: nothing to announce yet
            monitor = await fleet.monitor("vm")
            await monitor.execute("cont")
            await r.wait_for("vm", GUEST_SHUTDOWN[0])
            await r.settle(quiet=0.5)
            assert r.lines() == [*BOOTED, GUEST_SHUTDOWN[0]]
            assert fleet["vm"].process.returncode is None  # still there
            assert (await monitor.execute("query-status"))["status"] == "shutdown"
            assert (await r.state("vm"))[:2] == ("SHUTDOWN", "UNKNOWN")
            fleet["vm"].send_signal(signal.SIGTERM)  # whoever owns it finishes the job
            await r.wait_for("vm", GUEST_SHUTDOWN[-1])
            await r.settle()
            assert r.lines() == BOOTED + GUEST_SHUTDOWN

    run(main())


def test_glob_picks_up_new_vms_and_drops_vanished_ones(
    qemu: Images, tmp_path: Path, sockdir: Path
) -> None:
    async def main() -> None:
        async with Fleet(qemu, sockdir) as fleet:
            await fleet.spawn("idle", "old")
            await fleet["old"].wait_for_boot("idle")
            async with BridgeRun(tmp_path, sources=[attach(sockdir / "*.qmp")]) as r:
                source = r.sources["qmp"].source
                await until(r.attached())
                await fleet.spawn("idle", "new")
                await r.wait_for("new", BOOTED[-1])
                assert r.lines("old") == []  # there before the bridge: not announced
                # SIGTERM: QEMU says SHUTDOWN, exits and removes its socket; the watch ends.
                fleet["old"].send_signal(signal.SIGTERM)
                await r.wait_for("old", HOST_SHUTDOWN[-1])
                old = str(sockdir / "old.qmp")
                await until(lambda: old not in source._watchers, what="old.qmp dropped")
                # SIGKILL leaves the socket file; the source retries until it is removed.
                fleet["new"].send_signal(signal.SIGKILL)
                await r.wait_for("new", KILLED[0])
                new = str(sockdir / "new.qmp")
                await asyncio.sleep(0.2)
                assert new in source._watchers  # still retrying
                (sockdir / "new.qmp").unlink()
                await until(lambda: new not in source._watchers, what="new.qmp dropped")
                await r.settle()
                assert r.lines("old") == HOST_SHUTDOWN
                assert r.lines("new") == BOOTED + KILLED
                assert r.sources["qmp"].state == "running"

    run(main())


def test_twenty_vms_at_once(qemu: Images, tmp_path: Path, sockdir: Path) -> None:
    """Twenty guests appear under one glob; each is then acted on differently, all at once;
    every event lands on the right domain with that domain's id."""
    actions = {
        0: ("stop", [PAUSED]),
        1: ("reset", [REBOOTED]),
        2: ("kill", KILLED),
        3: ("stop-cont", [PAUSED, UNPAUSED]),
        4: ("term", HOST_SHUTDOWN),
    }
    tags = [f"vm{i:02d}" for i in range(20)]

    async def act(fleet: Fleet, tag: str, what: str) -> None:
        monitor = await fleet.monitor(tag)
        if what == "stop":
            await monitor.execute("stop")
        elif what == "reset":
            await monitor.execute("system_reset")
            await fleet[tag].wait_for_boot("idle", count=2, timeout=20)
        elif what == "kill":
            fleet[tag].send_signal(signal.SIGKILL)
        elif what == "stop-cont":
            await monitor.execute("stop")
            await monitor.execute("cont")
        elif what == "term":
            fleet[tag].send_signal(signal.SIGTERM)

    async def main() -> None:
        async with (
            Fleet(qemu, sockdir) as fleet,
            BridgeRun(tmp_path, sources=[attach(sockdir / "*.qmp")]) as r,
        ):
            await asyncio.gather(*(fleet.spawn("idle", tag) for tag in tags))
            for tag in tags:
                await r.wait_for(tag, BOOTED[-1], timeout=30)
                # Act on booted guests only: resets sent before the first boot, with twenty
                # guests starting at once, left some without any boot marker here.
                await fleet[tag].wait_for_boot("idle", timeout=30)
            await asyncio.gather(
                *(act(fleet, tag, actions[i % 5][0]) for i, tag in enumerate(tags))
            )
            for i, tag in enumerate(tags):
                await r.wait_for(tag, actions[i % 5][1][-1].replace("+", ""), timeout=20)
            await r.settle()
            for i, tag in enumerate(tags):
                assert squash(r.lines(tag)) == BOOTED + actions[i % 5][1], tag
            events = r.events()
            assert {e["domain"] for e in events} == set(tags)
            ids = {tag: {e["id"] for e in events if e["domain"] == tag} for tag in tags}
            assert all(len(found) == 1 for found in ids.values()), ids
            assert len({min(found) for found in ids.values()}) == 20  # one id per domain

    run(main(), timeout=120)


def test_a_single_socket_that_appears_late_is_a_new_vm(
    qemu: Images, tmp_path: Path, sockdir: Path
) -> None:
    """Nobody listened on the socket when the bridge started: what answers later is a process
    that started while the bridge ran, and is announced."""

    async def main() -> None:
        async with (
            Fleet(qemu, sockdir) as fleet,
            BridgeRun(tmp_path, sources=[attach(sockdir / "vm.qmp")]) as r,
        ):
            await asyncio.sleep(0.2)  # a few failed attempts
            await fleet.spawn("idle", "vm")
            await r.wait_for("vm", BOOTED[-1])
            await r.settle()
            assert r.lines() == BOOTED

    run(main())


def test_control_of_an_attached_domain(qemu: Images, tmp_path: Path, sockdir: Path) -> None:
    """An attach source refuses what it cannot do before the engine hears of it; with
    ``allow_commands`` it sends monitor commands, and it never destroys."""

    async def main() -> None:
        async with Fleet(qemu, sockdir) as fleet:
            await fleet.spawn("idle", "a")
            await fleet.spawn("idle", "b")
            sources = [
                {**attach(sockdir / "a.qmp", domain="a"), "name": "observer"},
                {**attach(sockdir / "b.qmp", domain="b", allow_commands=True), "name": "commander"},
            ]
            async with BridgeRun(tmp_path, sources=sources) as r:
                await until(r.attached("observer"))
                await until(r.attached("commander"))
                refused = await r.ctl("a", "suspend")
                assert refused["ok"] is False and "only observes" in refused["error"]
                assert (await r.state("a"))[:2] == ("RUNNING", "BOOTED")
                done = await r.ctl("b", "suspend")
                assert done["ok"] is True and done["state"] == "PAUSED/USER"
                for domain in ("a", "b"):
                    destroy = await r.ctl(domain, "destroy")
                    assert destroy["ok"] is False and "never kills" in destroy["error"]
                assert fleet["a"].process.returncode is None
                assert fleet["b"].process.returncode is None

    run(main())


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_a_vm_that_died_while_the_bridge_was_away(
    qemu: Images, tmp_path: Path, sockdir: Path, strict: bool
) -> None:
    """libvirt's reconnect stops such a domain without an event; virtbridge says so with the
    extension STOPPED/VANISHED, and nothing under strict_libvirt (never STOPPED/FAILED, which
    means "it crashed while we watched")."""
    settings = {"strict_libvirt": strict}

    async def main() -> list[str]:
        async with Fleet(qemu, sockdir) as fleet:
            await fleet.spawn("idle", "vm")
            await fleet["vm"].wait_for_boot("idle")
            source = attach(sockdir / "vm.qmp", domain="vm")
            async with BridgeRun(tmp_path, sources=[source], bridge=settings) as first:
                await until(first.attached())
            await fleet["vm"].kill()
            second = BridgeRun(tmp_path, sources=[source], bridge=settings, name="second")
            second.state_dir = first.state_dir
            second.data["bridge"]["state_dir"] = str(first.state_dir)
            async with second:
                await second.settle(quiet=1.0)
                return second.lines()

    expected = [] if strict else ["STOPPED/VANISHED [5/100] -> SHUTOFF/CRASHED [5/3]"]
    assert run(main()) == expected
