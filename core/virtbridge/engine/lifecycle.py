"""Lifecycle event types and their details (``virDomainEventType`` and the detail enums).

Values are libvirt's.  Members with a value of 100 or more are virtbridge extensions
(see :data:`EXTENSION_DETAILS`): the shutdown *request* the libvirt review asked for in 2011
and never got, and the event saying a request timed out.
"""

from __future__ import annotations

from enum import IntEnum

from virtbridge.engine.states import EXTENSION_BASE, DomainState


class EventType(IntEnum):
    """``virDomainEventType``: the ``event`` argument of a lifecycle callback."""

    DEFINED = 0
    UNDEFINED = 1
    STARTED = 2
    SUSPENDED = 3
    RESUMED = 4
    STOPPED = 5
    SHUTDOWN = 6
    PMSUSPENDED = 7
    CRASHED = 8


class DefinedDetail(IntEnum):
    ADDED = 0
    UPDATED = 1
    RENAMED = 2
    FROM_SNAPSHOT = 3


class UndefinedDetail(IntEnum):
    REMOVED = 0
    RENAMED = 1


class StartedDetail(IntEnum):
    BOOTED = 0
    MIGRATED = 1
    RESTORED = 2
    FROM_SNAPSHOT = 3
    WAKEUP = 4
    RECREATED = 5


class SuspendedDetail(IntEnum):
    PAUSED = 0
    MIGRATED = 1
    IOERROR = 2
    WATCHDOG = 3
    RESTORED = 4
    FROM_SNAPSHOT = 5
    API_ERROR = 6
    POSTCOPY = 7
    POSTCOPY_FAILED = 8
    GUEST_SHUTDOWN = 9


class ResumedDetail(IntEnum):
    UNPAUSED = 0
    MIGRATED = 1
    FROM_SNAPSHOT = 2
    POSTCOPY = 3
    POSTCOPY_FAILED = 4


class StoppedDetail(IntEnum):
    SHUTDOWN = 0
    DESTROYED = 1
    CRASHED = 2
    MIGRATED = 3
    SAVED = 4
    FAILED = 5
    FROM_SNAPSHOT = 6
    RECREATED = 7
    # Extension: the process ended while the bridge was not watching (found on looking again;
    # libvirt's reconnect stops the domain silently).
    VANISHED = EXTENSION_BASE


class ShutdownDetail(IntEnum):
    FINISHED = 0
    GUEST = 1
    HOST = 2
    # Extensions: a shutdown was requested (the domain is still running) ...
    REQUESTED = EXTENSION_BASE
    # ... and the guest did not finish shutting down within the domain's shutdown timeout.
    IGNORED = EXTENSION_BASE + 1


class PMSuspendedDetail(IntEnum):
    MEMORY = 0
    DISK = 1


class CrashedDetail(IntEnum):
    PANICKED = 0
    CRASHLOADED = 1


Detail = (
    DefinedDetail
    | UndefinedDetail
    | StartedDetail
    | SuspendedDetail
    | ResumedDetail
    | StoppedDetail
    | ShutdownDetail
    | PMSuspendedDetail
    | CrashedDetail
)

DETAILS: dict[EventType, type[IntEnum]] = {
    EventType.DEFINED: DefinedDetail,
    EventType.UNDEFINED: UndefinedDetail,
    EventType.STARTED: StartedDetail,
    EventType.SUSPENDED: SuspendedDetail,
    EventType.RESUMED: ResumedDetail,
    EventType.STOPPED: StoppedDetail,
    EventType.SHUTDOWN: ShutdownDetail,
    EventType.PMSUSPENDED: PMSuspendedDetail,
    EventType.CRASHED: CrashedDetail,
}
"""The detail enum that belongs to each lifecycle event type."""

EXTENSION_DETAILS = frozenset(
    {
        (EventType.SHUTDOWN, ShutdownDetail.REQUESTED),
        (EventType.SHUTDOWN, ShutdownDetail.IGNORED),
        (EventType.STOPPED, StoppedDetail.VANISHED),
    }
)
"""The (event, detail) pairs that are virtbridge extensions (detail numbers start at 100 in
each detail enum, so a number alone is ambiguous)."""


_ANY_ACTIVE = frozenset(
    {
        DomainState.RUNNING,
        DomainState.BLOCKED,
        DomainState.PAUSED,
        DomainState.SHUTDOWN,
        DomainState.CRASHED,
        DomainState.PMSUSPENDED,
    }
)
_ANY = _ANY_ACTIVE | {DomainState.SHUTOFF, DomainState.NOSTATE}

STATES_AFTER: dict[EventType, frozenset[DomainState]] = {
    EventType.DEFINED: _ANY,
    EventType.UNDEFINED: _ANY,
    EventType.STARTED: frozenset({DomainState.RUNNING, DomainState.PAUSED}),
    EventType.SUSPENDED: frozenset({DomainState.PAUSED}),
    EventType.RESUMED: frozenset({DomainState.RUNNING}),
    EventType.STOPPED: frozenset({DomainState.SHUTOFF}),
    EventType.SHUTDOWN: frozenset({DomainState.SHUTDOWN}),
    EventType.PMSUSPENDED: frozenset({DomainState.PMSUSPENDED}),
    EventType.CRASHED: frozenset({DomainState.CRASHED}),
}
"""Which states a domain can be in right after a lifecycle event of each type.

Exceptions, by detail, are in :data:`STATES_AFTER_DETAIL`.  STARTED may leave the domain
paused because libvirt emits STARTED before SUSPENDED for a domain started paused.
"""

STATES_AFTER_DETAIL: dict[tuple[EventType, int], frozenset[DomainState]] = {
    # The guest loaded a crash kernel and keeps running: libvirt changes no state.
    (EventType.CRASHED, CrashedDetail.CRASHLOADED): _ANY_ACTIVE,
    # A shutdown request leaves the domain as it was (usually running); so does its timeout.
    (EventType.SHUTDOWN, ShutdownDetail.REQUESTED): _ANY_ACTIVE,
    (EventType.SHUTDOWN, ShutdownDetail.IGNORED): _ANY_ACTIVE,
}


def states_after(event: EventType, detail: int) -> frozenset[DomainState]:
    """States that agree with a lifecycle (event, detail) that was just emitted."""
    return STATES_AFTER_DETAIL.get((event, detail), STATES_AFTER[event])
