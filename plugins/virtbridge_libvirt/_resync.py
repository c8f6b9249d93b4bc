"""After a (re)connection: what changed while nobody was listening, as signals.

libvirt's own clients get nothing when they reconnect, so whatever happened meanwhile (a
QEMU that died, most importantly) would never be reported.  The source remembers which
domains it has told the bridge are active (:class:`View`, stored as the source's position
so it survives a restart of the bridge too) and compares that with a fresh listing:

* told active, now gone or inactive, or running again under a new ID: the process ended
  unseen.  That is the engine's ``ProcessLost``, announced as the extension STOPPED/VANISHED
  (not under ``strict_libvirt``), with libvirt's state after a lost process, SHUTOFF/CRASHED.
* active now but not as told (started, paused, resumed meanwhile, or found at the first
  start): the engine is brought in line silently, as libvirt's reconnect does
  (``ObservedStatus``), so ``virtbridge ctl`` and ``status`` are right.

A domain shutting down at the moment of listing is left for the next look.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

import virtbridge
from virtbridge import DomainState, PausedReason

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


def plan(
    view: View,
    listed: Mapping[str, Listed],
    *,
    skip: frozenset[str] = frozenset(),
    stamp: virtbridge.Timestamp | None = None,
) -> Plan:
    """The signals that bring the bridge in line with ``listed``, and the view afterwards.

    ``skip``: domains with an event newer than the listing (the event is what counts)."""
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
