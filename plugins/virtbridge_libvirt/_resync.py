"""After a (re)connection: what changed while nobody was listening, as signals.

libvirt's own clients get nothing when they reconnect, so whatever happened meanwhile (a
QEMU that died, most importantly) would never be reported.  The source remembers which
domains it has told the bridge are active (:class:`View`, stored as the source's position
so it survives a restart of the bridge too) and compares that with a fresh listing:

* told active, now gone or inactive, or running again under a new ID: the process ended
  unseen.  That is the engine's ``ProcessLost``, announced as the extension STOPPED/VANISHED
  (not under ``strict_libvirt``), with libvirt's state after a lost process, SHUTOFF/CRASHED.
* active now but not as told (started, paused or resumed meanwhile): announced with the
  lifecycle events libvirt would have sent (STARTED/BOOTED, SUSPENDED, RESUMED, ...), marked
  ``resync`` so they are an extension too (:class:`virtbridge.LibvirtEvent`).
* found active the very first time the source runs (nothing was told yet, so nothing can
  have been missed): the engine is brought in line silently, as libvirt's reconnect does
  (``ObservedStatus``), so ``virtbridge ctl`` and ``status`` are right.

A domain shutting down at the moment of listing is left for the next look.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

import virtbridge
from virtbridge import (
    CrashedDetail,
    DomainState,
    EventType,
    PausedReason,
    PMSuspendedDetail,
    ResumedDetail,
    RunningReason,
    StartedDetail,
    SuspendedDetail,
)

Listed = tuple[str | None, int, int, int]
"""(uuid, id, state, reason) of one domain, as libvirt listed it."""


class Seen(msgspec.Struct, array_like=True, frozen=True):
    uuid: str | None
    id: int
    state: int


class View(msgspec.Struct):
    """Domains the bridge was told are active: name → what it was told."""

    active: dict[str, Seen] = msgspec.field(default_factory=dict)

    def encode(self) -> str:
        return msgspec.json.encode(self).decode()

    @classmethod
    def decode(cls, text: str | None) -> View:
        if not text:
            return cls()
        try:
            return msgspec.json.decode(text, type=cls)
        except msgspec.DecodeError:
            return cls()  # an unreadable position: as after a first start


_PAUSED_STATUS: Mapping[int, str] = {
    PausedReason.IOERROR: "io-error",
    PausedReason.WATCHDOG: "watchdog",
    PausedReason.MIGRATION: "postmigrate",
    PausedReason.SAVE: "save-vm",
}

_STATUS: Mapping[DomainState, tuple[str, bool]] = {
    DomainState.RUNNING: ("running", True),
    DomainState.BLOCKED: ("running", True),
    DomainState.PAUSED: ("paused", False),
    DomainState.CRASHED: ("guest-panicked", False),
    DomainState.PMSUSPENDED: ("suspended", False),
}
"""libvirt's state as the status a monitor reports (what ObservedStatus speaks).  SHUTDOWN is
missing on purpose: it lasts milliseconds, and the engine would finish the shutdown itself."""

_ACTIVE = frozenset(int(state) for state in DomainState) - {
    int(DomainState.NOSTATE),
    int(DomainState.SHUTOFF),
}


@dataclass(frozen=True)
class Plan:
    signals: list[virtbridge.Signal]
    view: View


_SUSPENDED_DETAIL: Mapping[int, int] = {
    PausedReason.IOERROR: SuspendedDetail.IOERROR,
    PausedReason.WATCHDOG: SuspendedDetail.WATCHDOG,
    PausedReason.MIGRATION: SuspendedDetail.MIGRATED,
    PausedReason.API_ERROR: SuspendedDetail.API_ERROR,
}

_ENTERED: Mapping[int, tuple[EventType, int]] = {
    DomainState.PAUSED: (EventType.SUSPENDED, SuspendedDetail.PAUSED),
    DomainState.RUNNING: (EventType.RESUMED, ResumedDetail.UNPAUSED),
    DomainState.BLOCKED: (EventType.RESUMED, ResumedDetail.UNPAUSED),
    DomainState.PMSUSPENDED: (EventType.PMSUSPENDED, PMSuspendedDetail.MEMORY),
    DomainState.CRASHED: (EventType.CRASHED, CrashedDetail.PANICKED),
}
"""The lifecycle event that leads into a state (a domain found in it after a reconnect)."""


def _missed(
    name: str, listed: Listed, started: bool, stamp: virtbridge.Timestamp | None
) -> list[virtbridge.Signal]:
    """The events libvirt sent while nobody listened: STARTED if the process is new, then
    the event into the state it is in now."""
    uuid, ident, state, reason = listed
    events: list[tuple[EventType, int, DomainState, int]] = []
    if started:
        events.append(
            (EventType.STARTED, StartedDetail.BOOTED, DomainState.RUNNING, RunningReason.BOOTED)
        )
    if not started or state not in (DomainState.RUNNING, DomainState.BLOCKED):
        event, detail = _ENTERED[state]
        if state == DomainState.PAUSED:
            detail = _SUSPENDED_DETAIL.get(reason, detail)
        events.append((event, detail, DomainState(state), reason))
    return [
        virtbridge.LibvirtEvent(
            domain=name,
            uuid=uuid,
            timestamp=stamp,
            event_id=virtbridge.EventID.LIFECYCLE,
            payload=virtbridge.Lifecycle(event, detail),
            id=ident,
            state=after,
            reason=why,
            resync=True,
        )
        for event, detail, after, why in events
    ]


def plan(
    view: View,
    listed: Mapping[str, Listed],
    *,
    skip: frozenset[str] = frozenset(),
    stamp: virtbridge.Timestamp | None = None,
    announce: bool = False,
) -> Plan:
    """The signals that bring the bridge in line with ``listed``, and the view afterwards.

    ``skip``: domains with an event newer than the listing (the event is what counts).
    ``announce``: something was told before (a reconnect, or a view stored by an earlier
    run), so what changed since is announced; otherwise the bridge is brought in line
    silently."""
    signals: list[virtbridge.Signal] = []
    after = dict(view.active)
    for name, seen in view.active.items():
        if name in skip:
            continue
        now = listed.get(name)
        restarted = now is not None and now[2] in _ACTIVE and now[1] != seen.id
        if now is None or now[2] not in _ACTIVE or restarted:
            signals.append(virtbridge.ProcessLost(domain=name, uuid=seen.uuid, timestamp=stamp))
            del after[name]
    for name, (uuid, ident, state, reason) in listed.items():
        if name in skip or state not in _ACTIVE:
            continue
        told = after.get(name)
        if told is not None and told.state == state:
            continue
        status = _STATUS.get(DomainState(state))
        if status is None:
            continue  # shutting down right now: look again later
        if announce:
            if state == DomainState.PAUSED and reason == PausedReason.STARTING_UP:
                continue  # being started right now: libvirt announces it itself
            signals.extend(_missed(name, (uuid, ident, state, reason), told is None, stamp))
            after[name] = Seen(uuid, ident, state)
            continue
        text, running = status
        if state == DomainState.PAUSED:
            text = _PAUSED_STATUS.get(reason, text)
        signals.append(
            virtbridge.ObservedStatus(
                domain=name, uuid=uuid, timestamp=stamp, status=text, running=running
            )
        )
        after[name] = Seen(uuid, ident, state)
    return Plan(signals, View(after))
