"""Domain states and their reasons, with libvirt's names and numeric values.

``virDomainGetState()`` returns a (state, reason) pair; the reason enum depends on the
state.  Values are libvirt's (``include/libvirt/libvirt-domain.h``).  Members whose value is
100 or more are virtbridge extensions: libvirt never produces them, and a bridge with
``strict_libvirt = true`` never emits them.
"""

from __future__ import annotations

from enum import IntEnum

EXTENSION_BASE = 100
"""The first numeric code virtbridge uses for its own enum members (outside libvirt's ranges)."""


class DomainState(IntEnum):
    """``virDomainState``."""

    NOSTATE = 0
    RUNNING = 1
    BLOCKED = 2
    PAUSED = 3
    SHUTDOWN = 4
    SHUTOFF = 5
    CRASHED = 6
    PMSUSPENDED = 7


class NostateReason(IntEnum):
    """``virDomainNostateReason``."""

    UNKNOWN = 0


class RunningReason(IntEnum):
    """``virDomainRunningReason`` plus one extension."""

    UNKNOWN = 0
    BOOTED = 1
    MIGRATED = 2
    RESTORED = 3
    FROM_SNAPSHOT = 4
    UNPAUSED = 5
    MIGRATION_CANCELED = 6
    SAVE_CANCELED = 7
    WAKEUP = 8
    CRASHED = 9
    POSTCOPY = 10
    POSTCOPY_FAILED = 11
    # Extension: running, but a shutdown was requested and the guest has not finished it.
    SHUTDOWN_REQUESTED = EXTENSION_BASE


class BlockedReason(IntEnum):
    """``virDomainBlockedReason``."""

    UNKNOWN = 0


class PausedReason(IntEnum):
    """``virDomainPausedReason``."""

    UNKNOWN = 0
    USER = 1
    MIGRATION = 2
    SAVE = 3
    DUMP = 4
    IOERROR = 5
    WATCHDOG = 6
    FROM_SNAPSHOT = 7
    SHUTTING_DOWN = 8
    SNAPSHOT = 9
    CRASHED = 10
    STARTING_UP = 11
    POSTCOPY = 12
    POSTCOPY_FAILED = 13
    API_ERROR = 14


class ShutdownReason(IntEnum):
    """``virDomainShutdownReason``."""

    UNKNOWN = 0
    USER = 1


class ShutoffReason(IntEnum):
    """``virDomainShutoffReason``."""

    UNKNOWN = 0
    SHUTDOWN = 1
    DESTROYED = 2
    CRASHED = 3
    MIGRATED = 4
    SAVED = 5
    FAILED = 6
    FROM_SNAPSHOT = 7
    DAEMON = 8


class CrashedReason(IntEnum):
    """``virDomainCrashedReason``."""

    UNKNOWN = 0
    PANICKED = 1


class PMSuspendedReason(IntEnum):
    """``virDomainPMSuspendedReason``."""

    UNKNOWN = 0


Reason = (
    NostateReason
    | RunningReason
    | BlockedReason
    | PausedReason
    | ShutdownReason
    | ShutoffReason
    | CrashedReason
    | PMSuspendedReason
)

REASONS: dict[DomainState, type[IntEnum]] = {
    DomainState.NOSTATE: NostateReason,
    DomainState.RUNNING: RunningReason,
    DomainState.BLOCKED: BlockedReason,
    DomainState.PAUSED: PausedReason,
    DomainState.SHUTDOWN: ShutdownReason,
    DomainState.SHUTOFF: ShutoffReason,
    DomainState.CRASHED: CrashedReason,
    DomainState.PMSUSPENDED: PMSuspendedReason,
}
"""The reason enum that belongs to each state."""

ACTIVE_STATES = frozenset(
    {
        DomainState.RUNNING,
        DomainState.BLOCKED,
        DomainState.PAUSED,
        DomainState.SHUTDOWN,
        DomainState.CRASHED,
        DomainState.PMSUSPENDED,
    }
)
"""States in which an emulator process exists (libvirt's ``virDomainObjIsActive``)."""


def is_valid_pair(state: int, reason: int) -> bool:
    """True when (state, reason) is a pair libvirt (or a virtbridge extension) defines."""
    try:
        REASONS[DomainState(state)](reason)
    except ValueError:
        return False
    return True
