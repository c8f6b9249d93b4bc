"""Events libvirt already computed (the libvirt source): passed through unchanged, with the
domain's state taken from libvirt or, when libvirt did not say, derived from the event."""

from __future__ import annotations

from collections.abc import Callable

from virtbridge.engine.domain import Tx
from virtbridge.engine.events import DomainRef
from virtbridge.engine.lifecycle import (
    CrashedDetail,
    EventType,
    ResumedDetail,
    ShutdownDetail,
    StartedDetail,
    StoppedDetail,
    SuspendedDetail,
)
from virtbridge.engine.payloads import Lifecycle
from virtbridge.engine.signals import LibvirtEvent
from virtbridge.engine.states import (
    CrashedReason,
    DomainState,
    PausedReason,
    PMSuspendedReason,
    RunningReason,
    ShutdownReason,
    ShutoffReason,
)

_STARTED_REASON: dict[int, RunningReason] = {
    StartedDetail.BOOTED: RunningReason.BOOTED,
    StartedDetail.MIGRATED: RunningReason.MIGRATED,
    StartedDetail.RESTORED: RunningReason.RESTORED,
    StartedDetail.FROM_SNAPSHOT: RunningReason.FROM_SNAPSHOT,
    StartedDetail.WAKEUP: RunningReason.WAKEUP,
    StartedDetail.RECREATED: RunningReason.BOOTED,
}
_SUSPENDED_REASON: dict[int, PausedReason] = {
    SuspendedDetail.PAUSED: PausedReason.USER,
    SuspendedDetail.MIGRATED: PausedReason.MIGRATION,
    SuspendedDetail.IOERROR: PausedReason.IOERROR,
    SuspendedDetail.WATCHDOG: PausedReason.WATCHDOG,
    SuspendedDetail.RESTORED: PausedReason.MIGRATION,
    SuspendedDetail.FROM_SNAPSHOT: PausedReason.FROM_SNAPSHOT,
    SuspendedDetail.API_ERROR: PausedReason.API_ERROR,
    SuspendedDetail.POSTCOPY: PausedReason.POSTCOPY,
    SuspendedDetail.POSTCOPY_FAILED: PausedReason.POSTCOPY_FAILED,
    SuspendedDetail.GUEST_SHUTDOWN: PausedReason.UNKNOWN,
}
_RESUMED_REASON: dict[int, RunningReason] = {
    ResumedDetail.UNPAUSED: RunningReason.UNPAUSED,
    ResumedDetail.MIGRATED: RunningReason.MIGRATED,
    ResumedDetail.FROM_SNAPSHOT: RunningReason.FROM_SNAPSHOT,
    ResumedDetail.POSTCOPY: RunningReason.POSTCOPY,
    ResumedDetail.POSTCOPY_FAILED: RunningReason.POSTCOPY_FAILED,
}
_STOPPED_REASON: dict[int, ShutoffReason] = {
    StoppedDetail.SHUTDOWN: ShutoffReason.SHUTDOWN,
    StoppedDetail.DESTROYED: ShutoffReason.DESTROYED,
    StoppedDetail.CRASHED: ShutoffReason.CRASHED,
    StoppedDetail.MIGRATED: ShutoffReason.MIGRATED,
    StoppedDetail.SAVED: ShutoffReason.SAVED,
    StoppedDetail.FAILED: ShutoffReason.CRASHED,
    StoppedDetail.FROM_SNAPSHOT: ShutoffReason.FROM_SNAPSHOT,
    StoppedDetail.RECREATED: ShutoffReason.UNKNOWN,
}

LIFECYCLE_TO_STATE: dict[EventType, Callable[[int], tuple[DomainState, int] | None]] = {
    EventType.STARTED: lambda d: (
        DomainState.RUNNING,
        _STARTED_REASON.get(d, RunningReason.UNKNOWN),
    ),
    EventType.SUSPENDED: lambda d: (
        DomainState.PAUSED,
        _SUSPENDED_REASON.get(d, PausedReason.UNKNOWN),
    ),
    EventType.RESUMED: lambda d: (
        DomainState.RUNNING,
        _RESUMED_REASON.get(d, RunningReason.UNPAUSED),
    ),
    EventType.STOPPED: lambda d: (
        DomainState.SHUTOFF,
        _STOPPED_REASON.get(d, ShutoffReason.UNKNOWN),
    ),
    EventType.SHUTDOWN: lambda d: (
        None if d >= ShutdownDetail.REQUESTED else (DomainState.SHUTDOWN, ShutdownReason.UNKNOWN)
    ),
    EventType.PMSUSPENDED: lambda d: (DomainState.PMSUSPENDED, PMSuspendedReason.UNKNOWN),
    EventType.CRASHED: lambda d: (
        (DomainState.CRASHED, CrashedReason.PANICKED) if d == CrashedDetail.PANICKED else None
    ),
}
"""The state a libvirt lifecycle event implies, when libvirt did not say (None: unchanged)."""


def libvirt_event(tx: Tx) -> None:
    signal = tx.signal
    assert isinstance(signal, LibvirtEvent)
    dom = tx.domain()
    was_active = dom.active
    payload = signal.payload
    if isinstance(payload, Lifecycle):
        if payload.event == EventType.DEFINED:
            dom.persistent = True
        elif payload.event == EventType.UNDEFINED:
            dom.persistent = False
    if signal.state is not None:
        tx.set_state(signal.state, signal.reason or 0)
    elif isinstance(payload, Lifecycle):
        derive = LIFECYCLE_TO_STATE.get(EventType(payload.event))
        target = derive(payload.detail) if derive is not None else None
        if target is not None:
            tx.set_state(*target)
    if dom.active != was_active:
        # A process started or ended: what the engine kept about the last one (a pending
        # shutdown request and its deadline, a fake reboot, ...) ends with it.
        dom.clear_process_flags()
        dom.lingering = False
    # The record keeps "ID > 0 exactly while active"; the event carries libvirt's ID as given.
    if not dom.active:
        new_id = -1
    elif signal.id > 0:
        new_id = signal.id
    else:
        new_id = dom.id if dom.id > 0 else tx.engine.allocate_id()
    if new_id != dom.id:
        dom.id = new_id
        dom.refresh_ref()
    tx.emit(signal.event_id, payload, DomainRef(dom.name, dom.uuid, signal.id))
