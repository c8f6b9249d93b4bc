"""Properties over random signal sequences for many domains (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtbridge import (
    DomainState,
    Engine,
    Event,
    EventID,
    Intent,
    IntentKind,
    LibvirtEvent,
    Lifecycle,
    MonitorEof,
    MonitorError,
    ObservedStatus,
    PolicyOverrides,
    ProcessExit,
    QmpEvent,
    Signal,
    Timer,
    Timestamp,
)
from virtbridge.engine.lifecycle import EventType, StartedDetail, states_after
from virtbridge.engine.policy import LifecycleAction, ShutdownTimeoutAction
from virtbridge.engine.qmp import QMP_HANDLERS
from virtbridge.engine.states import ACTIVE_STATES, EXTENSION_BASE, is_valid_pair

DOMAINS = ["a", "b/#", "c.>", "d"]
QMP_NAMES = [*QMP_HANDLERS, "UNKNOWN_EVENT", "NIC_RX_FILTER_CHANGED"]
STATUSES = [
    "running",
    "paused",
    "prelaunch",
    "shutdown",
    "guest-panicked",
    "suspended",
    "inmigrate",
    "io-error",
    "watchdog",
    "debug",
    "weird",
]

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=8))
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
plausible = st.fixed_dictionaries(
    {},
    optional={
        "guest": st.booleans(),
        "reason": st.sampled_from(
            ["guest-shutdown", "host-signal", "guest-reset", "host-qmp-quit"]
        ),
        "action": st.sampled_from(["pause", "poweroff", "run", "stop", "report", "reset", "none"]),
        "device": st.sampled_from(["drive-virtio-disk0", "net0", "channel0"]),
        "id": st.sampled_from(["channel0", "ide0-1-0", "virtiomem0"]),
        "open": st.booleans(),
        "offset": st.integers(-(10**6), 10**6),
        "actual": st.integers(0, 2**40),
    },
)
data = st.one_of(
    st.none(), plausible, st.dictionaries(st.text(max_size=10), json_value, max_size=4)
)

policy = st.one_of(
    st.none(),
    st.builds(
        PolicyOverrides,
        on_poweroff=st.none() | st.sampled_from(LifecycleAction),
        on_reboot=st.none() | st.sampled_from(LifecycleAction),
        on_crash=st.none() | st.sampled_from(LifecycleAction),
        shutdown_timeout=st.none() | st.sampled_from([0.0, 1.0, 5.0]),
        on_shutdown_timeout=st.none() | st.sampled_from(ShutdownTimeoutAction),
    ),
)

lifecycle = st.sampled_from(EventType).flatmap(
    lambda e: st.builds(
        Lifecycle,
        st.just(e),
        st.sampled_from(
            sorted(
                d
                for d in __import__("virtbridge.engine.lifecycle", fromlist=["DETAILS"]).DETAILS[e]
                if d < EXTENSION_BASE
            )
        ),
    )
)


@st.composite
def signal(draw: st.DrawFn) -> Signal:
    domain = draw(st.sampled_from(DOMAINS))
    step = draw(st.integers(0, 3))
    stamp = None if draw(st.integers(0, 9)) == 0 else Timestamp(1_700_000_000 + step)
    base: dict[str, Any] = {"domain": domain, "timestamp": stamp}
    kind = draw(st.integers(0, 9))
    if kind <= 3:
        return QmpEvent(event=draw(st.sampled_from(QMP_NAMES)), data=draw(data), **base)
    if kind == 4:
        return draw(
            st.sampled_from(
                [MonitorEof(**base), ProcessExit(status=0, **base), MonitorError(**base)]
            )
        )
    if kind in (5, 6):
        return Intent(
            intent=draw(st.sampled_from(IntentKind)),
            paused=draw(st.booleans()),
            image_paused=draw(st.booleans()),
            policy=draw(policy),
            uuid=draw(st.none() | st.sampled_from(["u1", "u2"])),
            **base,
        )
    if kind == 7:
        status = draw(st.sampled_from(STATUSES))
        running = status == "running" if draw(st.integers(0, 5)) else draw(st.booleans())
        return ObservedStatus(status=status, running=running, fresh=draw(st.booleans()), **base)
    if kind == 8:
        return Timer(**base)
    return LibvirtEvent(
        event_id=EventID.LIFECYCLE, payload=draw(lifecycle), id=draw(st.integers(-1, 50)), **base
    )


sequences = st.lists(signal(), min_size=1, max_size=60)


def _views(engine: Engine) -> dict[str, Any]:
    return {name: engine.view(name) for name in engine.names()}


def check(signals: list[Signal], strict: bool) -> list[Event]:
    engine = Engine(strict_libvirt=strict)
    produced: list[Event] = []
    highest_id = 0
    for sig in signals:
        before = _views(engine)
        outcome = engine.feed(sig)  # never raises
        after = _views(engine)
        for view in after.values():
            assert is_valid_pair(view.state, view.reason)
            assert (view.id > 0) == (view.state in ACTIVE_STATES), view
            if strict:
                assert view.reason < EXTENSION_BASE
        for event in outcome.events:
            assert is_valid_pair(event.state, event.reason)
            assert event.domain.name == sig.domain
            if strict:
                assert not event.is_extension
            if isinstance(sig, LibvirtEvent):
                continue  # libvirt's own IDs and states are passed through as given
            if event.domain.id == -1:
                assert event.state not in ACTIVE_STATES
            if event.state in ACTIVE_STATES:
                assert event.domain.id > 0
            life = event.lifecycle
            if life is not None:
                assert event.state in states_after(EventType(life.event), life.detail), (
                    event.describe()
                )
        if not isinstance(sig, LibvirtEvent):
            old, new = before.get(sig.domain), after.get(sig.domain)
            was_active = old is not None and old.state in ACTIVE_STATES
            if new is not None and new.id > 0 and (old is None or new.id != old.id):
                assert not was_active  # a new ID only for a new process ...
                assert new.id > highest_id  # ... and IDs only grow
                highest_id = new.id
            stopped = [
                e for e in outcome.events if e.lifecycle and e.lifecycle.event == EventType.STOPPED
            ]
            assert len(stopped) <= 1
            if stopped:
                assert was_active and (new is None or new.state not in ACTIVE_STATES)
            for e in outcome.events:
                life = e.lifecycle
                if life and life.event == EventType.STARTED and life.detail != StartedDetail.WAKEUP:
                    starting = (
                        old is not None and old.state is DomainState.PAUSED and old.reason == 11
                    )
                    assert not was_active or starting
        produced.extend(outcome.events)
    return produced


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences)
def test_engine_invariants(signals: list[Signal]) -> None:
    check(signals, strict=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences)
def test_strict_output_has_no_extension(signals: list[Signal]) -> None:
    check(signals, strict=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences, st.integers(0, 60))
def test_snapshot_restore_continues_identically(signals: list[Signal], cut: int) -> None:
    import msgspec

    cut = min(cut, len(signals))
    original = Engine()
    for sig in signals[:cut]:
        original.feed(sig)
    copy = Engine()
    copy.restore(msgspec.json.decode(msgspec.json.encode(original.snapshot())))
    for sig in signals[cut:]:
        assert copy.feed(sig) == original.feed(sig)
