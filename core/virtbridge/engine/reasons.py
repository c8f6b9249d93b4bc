"""Lifecycle details and state reasons: how libvirt pairs them, as one table read both ways.

Each :class:`Row` pairs an event's detail with a state's reason; the detail's enum names the
event type and the reason's enum names the state (``SuspendedDetail.MIGRATED`` ↔
``PausedReason.MIGRATION`` is SUSPENDED/MIGRATED ↔ PAUSED/MIGRATION).  The table is read

* reason → detail by :func:`suspended_detail` and :func:`resumed_detail`: the detail the STOP
  and RESUME rules announce for the reason libvirt saved before ``stop``/``cont`` (§2.2,
  qemu_domain.c), and the reconnect's announcement of a paused process;
* detail → reason by :func:`implied_state`: the state a lifecycle event passed through from
  libvirt implies when libvirt did not say (``libvirt.py``).

The pairing is not one-to-one.  A row that is true only one way says so (:class:`Way`):
``TO_REASON`` rows are read only detail → reason (the reason itself maps to another detail,
or to the default), ``TO_DETAIL`` rows only reason → detail (the detail implies another
reason).  Every other row is read both ways.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum, IntEnum
from typing import NamedTuple, TypeVar

from virtbridge.engine.lifecycle import (
    DETAILS,
    CrashedDetail,
    EventType,
    PMSuspendedDetail,
    ResumedDetail,
    ShutdownDetail,
    StartedDetail,
    StoppedDetail,
    SuspendedDetail,
)
from virtbridge.engine.states import (
    EXTENSION_BASE,
    REASONS,
    CrashedReason,
    DomainState,
    PausedReason,
    PMSuspendedReason,
    RunningReason,
    ShutdownReason,
    ShutoffReason,
)


class Way(Enum):
    """Which way a row is read."""

    BOTH = "detail ↔ reason"
    TO_REASON = "detail → reason only"
    TO_DETAIL = "reason → detail only"


_EVENT_OF: dict[type[IntEnum], EventType] = {enum: event for event, enum in DETAILS.items()}
_STATE_OF: dict[type[IntEnum], DomainState] = {enum: state for state, enum in REASONS.items()}


class Row(NamedTuple):
    """One pairing: an event's detail and a state's reason."""

    detail: IntEnum
    reason: IntEnum
    way: Way = Way.BOTH

    @property
    def event(self) -> EventType:
        return _EVENT_OF[type(self.detail)]

    @property
    def state(self) -> DomainState:
        return _STATE_OF[type(self.reason)]


TO_REASON = Way.TO_REASON
TO_DETAIL = Way.TO_DETAIL
_V = TypeVar("_V")

ROWS: tuple[Row, ...] = (
    # STARTED ↔ RUNNING
    Row(StartedDetail.BOOTED, RunningReason.BOOTED),
    Row(StartedDetail.MIGRATED, RunningReason.MIGRATED),
    Row(StartedDetail.RESTORED, RunningReason.RESTORED),
    Row(StartedDetail.FROM_SNAPSHOT, RunningReason.FROM_SNAPSHOT),
    Row(StartedDetail.WAKEUP, RunningReason.WAKEUP),
    Row(StartedDetail.RECREATED, RunningReason.BOOTED, TO_REASON),  # BOOTED reads as BOOTED
    # SUSPENDED ↔ PAUSED (§2.2: MIGRATION, FROM_SNAPSHOT, POSTCOPY, POSTCOPY_FAILED name their
    # detail; every other reason is announced as PAUSED)
    Row(SuspendedDetail.PAUSED, PausedReason.USER),
    Row(SuspendedDetail.MIGRATED, PausedReason.MIGRATION),
    Row(SuspendedDetail.IOERROR, PausedReason.IOERROR, TO_REASON),  # its own rule's detail
    Row(SuspendedDetail.WATCHDOG, PausedReason.WATCHDOG, TO_REASON),  # its own rule's detail
    Row(SuspendedDetail.RESTORED, PausedReason.MIGRATION, TO_REASON),  # MIGRATION → MIGRATED
    Row(SuspendedDetail.FROM_SNAPSHOT, PausedReason.FROM_SNAPSHOT),
    Row(SuspendedDetail.API_ERROR, PausedReason.API_ERROR, TO_REASON),  # API_ERROR → PAUSED
    Row(SuspendedDetail.POSTCOPY, PausedReason.POSTCOPY),
    Row(SuspendedDetail.POSTCOPY_FAILED, PausedReason.POSTCOPY_FAILED),
    Row(SuspendedDetail.GUEST_SHUTDOWN, PausedReason.UNKNOWN, TO_REASON),  # UNKNOWN → PAUSED
    # RESUMED ↔ RUNNING (§2.2: every reason not named here is announced as UNPAUSED)
    Row(ResumedDetail.UNPAUSED, RunningReason.UNPAUSED),
    Row(ResumedDetail.MIGRATED, RunningReason.MIGRATED),
    Row(ResumedDetail.MIGRATED, RunningReason.MIGRATION_CANCELED, TO_DETAIL),
    Row(ResumedDetail.FROM_SNAPSHOT, RunningReason.FROM_SNAPSHOT),
    Row(ResumedDetail.FROM_SNAPSHOT, RunningReason.RESTORED, TO_DETAIL),
    Row(ResumedDetail.POSTCOPY, RunningReason.POSTCOPY),
    Row(ResumedDetail.POSTCOPY_FAILED, RunningReason.POSTCOPY_FAILED),
    # STOPPED ↔ SHUTOFF
    Row(StoppedDetail.SHUTDOWN, ShutoffReason.SHUTDOWN),
    Row(StoppedDetail.DESTROYED, ShutoffReason.DESTROYED),
    Row(StoppedDetail.CRASHED, ShutoffReason.CRASHED),
    Row(StoppedDetail.MIGRATED, ShutoffReason.MIGRATED),
    Row(StoppedDetail.SAVED, ShutoffReason.SAVED),
    Row(StoppedDetail.FAILED, ShutoffReason.CRASHED, TO_REASON),  # CRASHED reads as CRASHED
    Row(StoppedDetail.FROM_SNAPSHOT, ShutoffReason.FROM_SNAPSHOT),
    Row(StoppedDetail.RECREATED, ShutoffReason.UNKNOWN, TO_REASON),
    # SHUTDOWN ↔ SHUTDOWN (the state has no reason but UNKNOWN)
    Row(ShutdownDetail.FINISHED, ShutdownReason.UNKNOWN),
    Row(ShutdownDetail.GUEST, ShutdownReason.UNKNOWN, TO_REASON),
    Row(ShutdownDetail.HOST, ShutdownReason.UNKNOWN, TO_REASON),
    # PMSUSPENDED ↔ PMSUSPENDED
    Row(PMSuspendedDetail.MEMORY, PMSuspendedReason.UNKNOWN),
    Row(PMSuspendedDetail.DISK, PMSuspendedReason.UNKNOWN, TO_REASON),
    # CRASHED ↔ CRASHED (CRASHLOADED has no row: the guest keeps running, the state stays)
    Row(CrashedDetail.PANICKED, CrashedReason.PANICKED),
)
"""The table.  A detail or reason with no row falls back to :data:`FALLBACK_STATE` or to the
default of :func:`suspended_detail` / :func:`resumed_detail`."""

FALLBACK_STATE: dict[EventType, tuple[DomainState, IntEnum]] = {
    EventType.STARTED: (DomainState.RUNNING, RunningReason.UNKNOWN),
    EventType.SUSPENDED: (DomainState.PAUSED, PausedReason.UNKNOWN),
    EventType.RESUMED: (DomainState.RUNNING, RunningReason.UNPAUSED),
    EventType.STOPPED: (DomainState.SHUTOFF, ShutoffReason.UNKNOWN),
    EventType.SHUTDOWN: (DomainState.SHUTDOWN, ShutdownReason.UNKNOWN),
    EventType.PMSUSPENDED: (DomainState.PMSUSPENDED, PMSuspendedReason.UNKNOWN),
}
"""The state an event implies when its detail has no row (an extension, or a detail newer
than the table).  DEFINED and UNDEFINED imply none, nor does CRASHED other than PANICKED."""


def _one_way(pairs: Iterable[tuple[tuple[EventType, int], _V]]) -> dict[tuple[EventType, int], _V]:
    """The rows read one way, as a lookup table; two rows for the same key are an error."""
    table: dict[tuple[EventType, int], _V] = {}
    for key, value in pairs:
        if key in table:
            raise ValueError(f"two rows are read the same way from {key}: mark one as one-way")
        table[key] = value
    return table


_STATE_FOR = _one_way(
    ((row.event, row.detail), (row.state, row.reason)) for row in ROWS if row.way is not TO_DETAIL
)
_DETAIL_FOR = _one_way(
    ((row.event, row.reason), row.detail) for row in ROWS if row.way is not TO_REASON
)


def suspended_detail(reason: int) -> int:
    """The SUSPENDED detail for a paused reason (§2.2); a reason with no row → PAUSED."""
    return _DETAIL_FOR.get((EventType.SUSPENDED, reason), SuspendedDetail.PAUSED)


def resumed_detail(reason: int) -> int:
    """The RESUMED detail for a running reason (§2.2); a reason with no row → UNPAUSED."""
    return _DETAIL_FOR.get((EventType.RESUMED, reason), ResumedDetail.UNPAUSED)


def implied_state(event: EventType, detail: int) -> tuple[DomainState, IntEnum] | None:
    """The (state, reason) a lifecycle event implies; None when it leaves the state as it is
    (DEFINED, UNDEFINED, CRASHED/CRASHLOADED, and the shutdown request's SHUTDOWN details)."""
    found = _STATE_FOR.get((event, detail))
    if found is not None:
        return found
    if event is EventType.SHUTDOWN and detail >= EXTENSION_BASE:
        return None  # a shutdown request or its timeout: the domain is still running
    return FALLBACK_STATE.get(event)
