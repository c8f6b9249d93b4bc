"""Events a libvirt source passes through: the record follows them; the extension marks."""

from __future__ import annotations

from virtbridge import (
    DefinedDetail,
    DomainState,
    Engine,
    EventID,
    EventType,
    Intent,
    IntentKind,
    LibvirtEvent,
    Lifecycle,
    PowerButton,
    RunningReason,
    StartedDetail,
    StoppedDetail,
    UndefinedDetail,
)


def libvirt(event: EventType, detail: int, **fields: object) -> LibvirtEvent:
    return LibvirtEvent(
        domain="vm", event_id=EventID.LIFECYCLE, payload=Lifecycle(event, detail), **fields
    )  # type: ignore[arg-type]


def test_definitions_change_persistence_even_with_libvirts_state() -> None:
    engine = Engine()
    engine.feed(libvirt(EventType.DEFINED, DefinedDetail.ADDED, state=DomainState.SHUTOFF))
    view = engine.view("vm")
    assert view is not None and view.persistent
    engine.feed(libvirt(EventType.UNDEFINED, UndefinedDetail.REMOVED, state=DomainState.SHUTOFF))
    assert engine.view("vm") is None  # transient and inactive: forgotten


def test_a_stop_ends_what_the_engine_kept_about_the_process() -> None:
    engine = Engine()
    engine.feed(libvirt(EventType.DEFINED, DefinedDetail.ADDED))
    engine.feed(
        libvirt(
            EventType.STARTED,
            StartedDetail.BOOTED,
            id=4,
            state=DomainState.RUNNING,
            reason=RunningReason.BOOTED,
        )
    )
    first = engine.feed(Intent(domain="vm", intent=IntentKind.SHUTDOWN))
    assert any(e.lifecycle and e.lifecycle.event == EventType.SHUTDOWN for e in first.events)
    engine.feed(libvirt(EventType.STOPPED, StoppedDetail.SHUTDOWN))
    engine.feed(libvirt(EventType.STARTED, StartedDetail.BOOTED, id=5))
    view = engine.view("vm")
    assert view is not None and view.id == 5
    again = engine.feed(Intent(domain="vm", intent=IntentKind.SHUTDOWN))
    assert [(e.lifecycle.event, e.domain.id) for e in again.events if e.lifecycle] == [
        (EventType.SHUTDOWN, 5)
    ]


def test_the_power_button_says_whether_it_is_pressed_for_a_reboot() -> None:
    engine = Engine()
    engine.feed(libvirt(EventType.STARTED, StartedDetail.BOOTED, id=1))
    reboot = engine.feed(Intent(domain="vm", intent=IntentKind.REBOOT)).actions
    assert reboot == (PowerButton(domain="vm", reboot=True),)
    shutdown = engine.feed(Intent(domain="vm", intent=IntentKind.SHUTDOWN)).actions
    assert PowerButton(domain="vm", reboot=False) in shutdown


def test_resynchronised_events_are_an_extension() -> None:
    signal = libvirt(EventType.STARTED, StartedDetail.BOOTED, id=2, resync=True)
    (event,) = Engine().feed(signal).events
    assert event.is_extension and event.state is DomainState.RUNNING
    assert Engine(strict_libvirt=True).feed(signal).events == ()
    view = Engine(strict_libvirt=True)
    view.feed(signal)
    assert view.view("vm") is not None and view.view("vm").state is DomainState.RUNNING  # type: ignore[union-attr]
    plain = libvirt(EventType.STARTED, StartedDetail.BOOTED, id=2)
    assert not Engine().feed(plain).events[0].is_extension
