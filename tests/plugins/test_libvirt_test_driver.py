"""The libvirt source against libvirt's own ``test:///default`` driver, in this process.

The test driver lives inside the client library, so the source runs here, with the public
:class:`virtbridge.Engine` behind a small :class:`virtbridge.SourceContext`; a second
connection of the test's own, with a plain callback, is the oracle.  Also here: every event
ID's arguments as payloads, the resynchronisation plan, and the error a missing binding gives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import virtbridge
from tests.support.bridge import SOURCES, write_config
from tests.support.bridge import virtbridge as run_virtbridge
from tests.support.libvirtd import require_binding
from virtbridge import DomainState, EventID, EventType
from virtbridge_libvirt import LibvirtConfig, LibvirtSource
from virtbridge_libvirt._payloads import Unrepresentable, payload, states_after
from virtbridge_libvirt._resync import Seen, View, plan

libvirt = require_binding()

TEST_XML = (
    "<domain type='test'><name>{name}</name><memory>8192</memory><os><type>hvm</type></os></domain>"
)


class Context(virtbridge.SourceContext):
    """The runtime's part, reduced: the engine, its events, its actions to the source."""

    def __init__(self, **engine: Any) -> None:
        self.name = "libvirt"
        self.logger = logging.getLogger("test.libvirt")
        self.host = "test"
        self.state_dir = Path("/nonexistent")
        self.engine = virtbridge.Engine(**engine)
        self.source: LibvirtSource | None = None
        self.events: list[virtbridge.Event] = []
        self.saved: str | None = None
        self.claimed: set[str] = set()

    def claim(self, domain: str) -> None:
        self.claimed.add(domain)

    def position(self) -> str | None:
        return self.saved

    def set_position(self, value: str) -> None:
        self.saved = value

    async def submit(self, signal: virtbridge.Signal) -> virtbridge.Outcome:
        outcome = self.engine.feed(signal)
        self.events.extend(outcome.events)
        assert self.source is not None
        for action in outcome.actions:
            await self.source.perform(action)
        return outcome

    async def submit_many(self, signals: Sequence[virtbridge.Signal]) -> int:
        count = 0
        for signal in signals:
            count += len((await self.submit(signal)).events)
        return count

    async def ctl(self, domain: str, verb: str) -> str | None:
        """What ``virtbridge ctl`` does with a verb: ask the source, then the engine."""
        assert self.source is not None
        refusal = self.source.refuses(verb, domain)
        if refusal is not None:
            return refusal
        stamp = virtbridge.Timestamp.from_float(time.time())
        intent = virtbridge.Intent(
            domain=domain, intent=virtbridge.IntentKind(verb), timestamp=stamp
        )
        return (await self.submit(intent)).error

    def lines(self, domain: str) -> list[str]:
        out = []
        for event in self.events:
            life = event.lifecycle
            if event.domain.name != domain or life is None:
                continue
            detail = int(life.detail)
            out.append(
                f"{EventType(life.event).name} [{int(life.event)}/{detail}] "
                f"-> [{int(event.state)}/{int(event.reason)}] id {event.domain.id}"
            )
        return out


async def _until(condition: Any, what: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout} s: {what()}")
        await asyncio.sleep(0.01)


async def _running(ctx: Context, source: LibvirtSource) -> asyncio.Task[None]:
    task = asyncio.create_task(source.run())
    await _until(lambda: source.connection is not None or task.done(), lambda: "a connection")
    if task.done():
        task.result()
    return task


async def _stop(task: asyncio.Task[None], source: LibvirtSource) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await source.close()


def test_every_lifecycle_call_is_reported_with_libvirts_codes(tmp_path: Path) -> None:
    image = str(tmp_path / "td.save")

    async def main() -> None:
        config = LibvirtConfig(type="libvirt", uri="test:///default", look_again=[])
        ctx = Context()
        source = ctx.source = LibvirtSource(config, ctx)
        task = await _running(ctx, source)
        oracle: list[str] = []
        watcher = libvirt.openReadOnly("test:///default")
        watcher.domainEventRegisterAny(
            None,
            libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            lambda _c, dom, event, detail, _o: oracle.append(
                f"{EventType(event).name} [{event}/{detail}]"
            ),
            None,
        )
        conn = libvirt.open("test:///default")
        name = "td-lifecycle"
        try:
            dom = conn.defineXML(TEST_XML.format(name=name))
            dom.create()
            dom.suspend()
            dom.resume()
            dom.shutdown()
            dom.create()
            dom.destroy()
            dom.create()
            dom.save(image)
            conn.restore(image)
            dom.destroy()
            dom.undefine()
            await _until(lambda: len(ctx.lines(name)) >= 12, lambda: ctx.lines(name))
            await _until(lambda: len(oracle) >= 12, lambda: oracle)
        finally:
            watcher.close()
            conn.close()
            await _stop(task, source)
        lines = ctx.lines(name)
        assert [line.split(" -> ")[0] for line in lines] == oracle
        assert [line.split(" id ")[0] for line in lines] == [
            "DEFINED [0/0] -> [5/0]",
            "STARTED [2/0] -> [1/1]",
            "SUSPENDED [3/0] -> [3/1]",
            "RESUMED [4/0] -> [1/5]",
            "STOPPED [5/0] -> [5/1]",
            "STARTED [2/0] -> [1/1]",
            "STOPPED [5/1] -> [5/2]",
            "STARTED [2/0] -> [1/1]",
            "STOPPED [5/4] -> [5/5]",
            "STARTED [2/2] -> [1/3]",
            "STOPPED [5/1] -> [5/2]",
            "UNDEFINED [1/0] -> [5/2]",
        ]
        ids = [int(line.split(" id ")[1]) for line in lines]
        assert ids[0] == -1 and ids[1] > 0 and ids[-1] == -1

    asyncio.run(asyncio.wait_for(main(), 30))


def test_registers_every_event_id_the_binding_offers() -> None:
    async def main() -> None:
        ctx = Context()
        config = LibvirtConfig(type="libvirt", uri="test:///default", look_again=[])
        source = ctx.source = LibvirtSource(config, ctx)
        task = await _running(ctx, source)
        try:
            assert source.connection is not None
            offered = {
                value
                for key, value in vars(libvirt).items()
                if key.startswith("VIR_DOMAIN_EVENT_ID_") and isinstance(value, int)
            }
            registered = {int(event_id) for event_id in source.connection.registered}
            refused = {int(event_id) for event_id in source.connection.refused}
            assert registered | refused == offered & {int(e) for e in EventID}
            assert registered >= set(
                range(27)
            )  # libvirt 9.0: LIFECYCLE .. MEMORY_DEVICE_SIZE_CHANGE
            assert "test" in ctx.claimed  # the test driver's own domain is now the source's
        finally:
            await _stop(task, source)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_ctl_verbs_call_libvirt_and_keep_the_shutdown_request_extension() -> None:
    async def main() -> None:
        config = LibvirtConfig(
            type="libvirt", uri="test:///default", allow_commands=True, look_again=[]
        )
        ctx = Context()
        source = ctx.source = LibvirtSource(config, ctx)
        task = await _running(ctx, source)
        conn = libvirt.open("test:///default")
        name = "td-ctl"
        try:
            conn.defineXML(TEST_XML.format(name=name))
            assert await source.start_domain(name) is None
            await _until(
                lambda: ctx.lines(name)[-1:] and "STARTED" in ctx.lines(name)[-1],
                lambda: ctx.lines(name),
            )
            assert await ctx.ctl(name, "suspend") is None
            await _until(lambda: "SUSPENDED" in ctx.lines(name)[-1], lambda: ctx.lines(name))
            assert await ctx.ctl(name, "suspend") is None  # already paused: a no-op, as libvirt
            assert await ctx.ctl(name, "resume") is None
            await _until(lambda: "RESUMED" in ctx.lines(name)[-1], lambda: ctx.lines(name))
            assert await ctx.ctl(name, "shutdown") is None
            await _until(lambda: "STOPPED [5/0]" in ctx.lines(name)[-1], lambda: ctx.lines(name))
            assert await ctx.ctl(name, "destroy") == (
                "Requested operation is not valid: domain is not running"
            )
            assert await source.start_domain("td-nowhere") is not None
        finally:
            if conn.lookupByName(name).isActive():
                conn.lookupByName(name).destroy()
            conn.lookupByName(name).undefine()
            conn.close()
            await _stop(task, source)
        assert [line.split(" id ")[0] for line in ctx.lines(name)] == [
            "DEFINED [0/0] -> [5/0]",
            "STARTED [2/0] -> [1/1]",
            "SUSPENDED [3/0] -> [3/1]",
            "RESUMED [4/0] -> [1/5]",
            "SHUTDOWN [6/100] -> [1/100]",  # the request: an extension, the domain still runs
            "STOPPED [5/0] -> [5/1]",
        ]

    asyncio.run(asyncio.wait_for(main(), 30))


def test_strict_libvirt_hides_the_request_but_keeps_libvirts_events() -> None:
    async def main() -> None:
        config = LibvirtConfig(
            type="libvirt", uri="test:///default", allow_commands=True, look_again=[]
        )
        ctx = Context(strict_libvirt=True)
        source = ctx.source = LibvirtSource(config, ctx)
        task = await _running(ctx, source)
        conn = libvirt.open("test:///default")
        name = "td-strict"
        try:
            conn.defineXML(TEST_XML.format(name=name)).create()
            await _until(lambda: len(ctx.lines(name)) >= 2, lambda: ctx.lines(name))
            assert await ctx.ctl(name, "shutdown") is None
            await _until(lambda: "STOPPED" in ctx.lines(name)[-1], lambda: ctx.lines(name))
            conn.lookupByName(name).undefine()
        finally:
            conn.close()
            await _stop(task, source)
        assert not any(event.is_extension for event in ctx.events)

    asyncio.run(asyncio.wait_for(main(), 30))


# -- pure pieces ---------------------------------------------------------------------------------

ARGUMENTS: dict[EventID, tuple[Any, ...]] = {
    EventID.LIFECYCLE: (5, 1),
    EventID.REBOOT: (),
    EventID.RTC_CHANGE: (-3600,),
    EventID.WATCHDOG: (1,),
    EventID.IO_ERROR: ("/img", "ide0-0-0", 1),
    EventID.GRAPHICS: (
        0,
        {"family": 0, "node": "127.0.0.1", "service": "5900"},
        {"family": 1, "node": "::1", "service": "40000"},
        "none",
        [("x509dname", "CN=a")],
    ),
    EventID.IO_ERROR_REASON: ("/img", "ide0-0-0", 1, "enospc"),
    EventID.CONTROL_ERROR: (),
    EventID.BLOCK_JOB: ("/img", 2, 3),
    EventID.DISK_CHANGE: (None, "/new.iso", "ide0-1-0", 0),
    EventID.TRAY_CHANGE: ("ide0-1-0", 1),
    EventID.PMWAKEUP: (0,),
    EventID.PMSUSPEND: (0,),
    EventID.BALLOON_CHANGE: (524288,),
    EventID.PMSUSPEND_DISK: (0,),
    EventID.DEVICE_REMOVED: ("net1",),
    EventID.BLOCK_JOB_2: ("vda", 4, 0),
    EventID.TUNABLE: ({"cputune.vcpu_period": 100000},),
    EventID.AGENT_LIFECYCLE: (1, 2),
    EventID.DEVICE_ADDED: ("net2",),
    EventID.MIGRATION_ITERATION: (3,),
    EventID.JOB_COMPLETED: ({"time_elapsed": 12},),
    EventID.DEVICE_REMOVAL_FAILED: ("dimm0",),
    EventID.METADATA_CHANGE: (2, "http://example.org/ns"),
    EventID.BLOCK_THRESHOLD: ("vda[1]", "/img", 1024, 10),
    EventID.MEMORY_FAILURE: (1, 2, 3),
    EventID.MEMORY_DEVICE_SIZE_CHANGE: ("virtiomem0", 1048576),
    EventID.NIC_MAC_CHANGE: ("net0", "52:54:00:00:00:01", "52:54:00:00:00:02"),
}


@pytest.mark.parametrize(
    "event_id",
    [e for e in EventID if e is not EventID.QEMU_MONITOR],
)
def test_every_event_ids_arguments_become_its_payload(event_id: EventID) -> None:
    body = payload(event_id, ARGUMENTS[event_id])
    assert isinstance(body, virtbridge.PAYLOAD_TYPES[event_id])
    # The payload survives the trip through the wire format unchanged.
    event = virtbridge.Event(
        event_id, virtbridge.DomainRef("d", None, 1), body, DomainState.RUNNING, 1, None,
        virtbridge.LibvirtEvent(domain="d", event_id=event_id, payload=body),
    )  # fmt: skip
    assert virtbridge.event_from_data(virtbridge.event_to_data(event)).payload == body


def test_unknown_codes_are_refused_not_renamed() -> None:
    with pytest.raises(Unrepresentable):
        payload(EventID.LIFECYCLE, (42, 0))
    with pytest.raises(Unrepresentable):
        payload(EventID.LIFECYCLE, (5, 99))
    with pytest.raises(Unrepresentable):
        payload(EventID.WATCHDOG, (17,))
    with pytest.raises(Unrepresentable):
        payload(EventID.REBOOT, (1,))


def test_libvirts_state_is_taken_only_when_it_agrees_with_the_event() -> None:
    stopped = payload(EventID.LIFECYCLE, (5, 1))
    assert states_after(EventID.LIFECYCLE, stopped) == {DomainState.SHUTOFF}
    loaded = payload(EventID.LIFECYCLE, (8, 1))  # CRASHED/CRASHLOADED: keeps running
    assert DomainState.RUNNING in states_after(EventID.LIFECYCLE, loaded)
    defined = payload(EventID.LIFECYCLE, (0, 0))
    assert states_after(EventID.LIFECYCLE, defined) == frozenset()
    assert states_after(EventID.REBOOT, virtbridge.Empty()) == frozenset()


def test_resync_plan() -> None:
    view = View({"gone": Seen("u1", 3, 1), "kept": Seen("u2", 4, 1), "again": Seen(None, 5, 1)})
    listed = {
        "gone": ("u1", -1, 5, 3),
        "kept": ("u2", 4, 3, 1),  # paused meanwhile: silently
        "again": (None, 9, 1, 1),  # stopped and started again under a new id
        "new": ("u4", 7, 1, 1),
        "ending": ("u5", 8, 4, 0),  # shutting down right now: next time
        "off": ("u6", -1, 5, 0),
    }
    result = plan(view, listed)
    kinds = [(type(signal).__name__, signal.domain) for signal in result.signals]
    assert kinds == [
        ("ProcessLost", "gone"),
        ("ProcessLost", "again"),
        ("ObservedStatus", "kept"),
        ("ObservedStatus", "again"),
        ("ObservedStatus", "new"),
    ]
    assert set(result.view.active) == {"kept", "again", "new"}
    assert plan(result.view, listed).signals == []
    assert plan(view, listed, skip=frozenset(view.active) | {"new"}).view.active.keys() == {
        "gone",
        "kept",
        "again",
    }
    assert View.decode(result.view.encode()) == result.view
    assert View.decode("not json") == View()


def test_after_a_reconnect_what_changed_meanwhile_is_announced_as_an_extension() -> None:
    view = View({"gone": Seen("u1", 3, 1), "kept": Seen("u2", 4, 1), "woke": Seen("u3", 6, 3)})
    listed = {
        "gone": ("u1", -1, 5, 3),
        "kept": ("u2", 4, 3, 5),  # paused meanwhile (I/O error)
        "woke": ("u3", 6, 1, 5),  # resumed meanwhile
        "new": ("u4", 7, 3, 1),  # started, then paused, meanwhile
        "booting": ("u5", 8, 3, 11),  # being started right now: its own events will say so
    }
    engine = virtbridge.Engine()
    told = {"gone": 3, "kept": 4, "woke": 6}
    for name, ident in told.items():
        started = virtbridge.LibvirtEvent(
            domain=name, event_id=EventID.LIFECYCLE, payload=virtbridge.Lifecycle(2, 0), id=ident
        )
        engine.feed(started)
    engine.feed(
        virtbridge.LibvirtEvent(
            domain="woke", event_id=EventID.LIFECYCLE, payload=virtbridge.Lifecycle(3, 0), id=6
        )
    )
    result = plan(view, listed, announce=True)
    events = [event for signal in result.signals for event in engine.feed(signal).events]
    described = [(e.domain.name, e.describe().split(" ", 2)[2]) for e in events]
    assert described == [
        ("gone", "STOPPED/VANISHED -> SHUTOFF/CRASHED"),
        ("kept", "SUSPENDED/IOERROR -> PAUSED/IOERROR"),
        ("woke", "RESUMED/UNPAUSED -> RUNNING/UNPAUSED"),
        ("new", "STARTED/BOOTED -> RUNNING/BOOTED"),
        ("new", "SUSPENDED/PAUSED -> PAUSED/USER"),
    ]
    assert all(event.is_extension for event in events)
    assert events[-1].domain.id == 7
    assert set(result.view.active) == {"kept", "woke", "new"}
    assert plan(result.view, listed, announce=True).signals == []
    strict = virtbridge.Engine(strict_libvirt=True)
    assert [e for s in result.signals[1:] for e in strict.feed(s).events] == []
    assert strict.view("new").state is DomainState.PAUSED  # type: ignore[union-attr]


def test_a_missing_binding_names_both_ways_to_install_it(tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "libvirt.py").write_text("raise ImportError('libvirt.so.0: cannot open')\n")
    config = write_config(
        tmp_path / "virtbridge.toml",
        state_dir=tmp_path / "state",
        sources=[{"type": "libvirt"}],
        sinks=[{"type": "null"}],
        plugins=["virtbridge_libvirt"],
    )
    path = os.pathsep.join([str(fake), *map(str, SOURCES)])
    done = run_virtbridge("check", "-c", str(config), env={"PYTHONPATH": path})
    assert done.returncode == 2, done
    assert "sources[0].type" in done.stderr
    assert "libvirt-python" in done.stderr and "python3-libvirt" in done.stderr
    assert "--system-site-packages" in done.stderr


def test_a_second_shutdown_request_after_a_restart_is_announced_again() -> None:
    async def main() -> None:
        config = LibvirtConfig(
            type="libvirt", uri="test:///default", allow_commands=True, look_again=[]
        )
        ctx = Context()
        source = ctx.source = LibvirtSource(config, ctx)
        task = await _running(ctx, source)
        conn = libvirt.open("test:///default")
        name = "td-twice"
        try:
            dom = conn.defineXML(TEST_XML.format(name=name))
            for run in (1, 2):
                dom.create()
                await _until(
                    lambda: "STARTED" in "".join(ctx.lines(name)[-1:]), lambda: ctx.lines(name)
                )
                assert await ctx.ctl(name, "shutdown") is None
                await _until(
                    lambda run=run: sum("STOPPED" in line for line in ctx.lines(name)) == run,
                    lambda: ctx.lines(name),
                )
            dom.undefine()
        finally:
            conn.close()
            await _stop(task, source)
        requests = [line for line in ctx.lines(name) if line.startswith("SHUTDOWN [6/100]")]
        assert len(requests) == 2, ctx.lines(name)

    asyncio.run(asyncio.wait_for(main(), 30))
