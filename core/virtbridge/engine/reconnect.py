"""Reconnect (§2.5 qemuProcessUpdateState): resynchronise a domain from ``query-status``.

libvirt re-derives the state with no events.  virtbridge does the same for a reconnect, and
additionally announces a *fresh* process (one that appeared while the bridge runs, e.g. a VM
someone else started) with libvirt's own start events, so attach-mode users see every start.
"""

from __future__ import annotations

from collections.abc import Callable

from virtbridge.engine import actions as act
from virtbridge.engine.domain import Tx
from virtbridge.engine.lifecycle import (
    CrashedDetail,
    EventType,
    PMSuspendedDetail,
    ResumedDetail,
    ShutdownDetail,
    StartedDetail,
    StoppedDetail,
)
from virtbridge.engine.reasons import suspended_detail
from virtbridge.engine.signals import ObservedStatus
from virtbridge.engine.states import (
    CrashedReason,
    DomainState,
    PausedReason,
    PMSuspendedReason,
    RunningReason,
    ShutdownReason,
    ShutoffReason,
)

STATUS_TO_PAUSED: dict[str, PausedReason] = {
    "debug": PausedReason.UNKNOWN,
    "internal-error": PausedReason.UNKNOWN,
    "restore-vm": PausedReason.UNKNOWN,
    "inmigrate": PausedReason.MIGRATION,
    "postmigrate": PausedReason.MIGRATION,
    "finish-migrate": PausedReason.MIGRATION,
    "io-error": PausedReason.IOERROR,
    "paused": PausedReason.USER,
    "prelaunch": PausedReason.USER,
    "running": PausedReason.UNKNOWN,
    "save-vm": PausedReason.SAVE,
    "shutdown": PausedReason.SHUTTING_DOWN,
    "watchdog": PausedReason.WATCHDOG,
    "guest-panicked": PausedReason.CRASHED,
}
"""QMP ``query-status`` status → paused reason (qemu_monitor_json.c); unknown → UNKNOWN."""

_OBSERVED: dict[str, tuple[DomainState, int]] = {
    "shutdown": (DomainState.SHUTDOWN, ShutdownReason.UNKNOWN),
    "guest-panicked": (DomainState.CRASHED, CrashedReason.PANICKED),
    "suspended": (DomainState.PMSUSPENDED, PMSuspendedReason.UNKNOWN),
}
"""Stopped statuses that are not a plain pause (qemuProcessUpdateState)."""

_ANNOUNCE: dict[DomainState, tuple[EventType, Callable[[int], int]]] = {
    DomainState.PAUSED: (EventType.SUSPENDED, suspended_detail),
    DomainState.SHUTDOWN: (EventType.SHUTDOWN, lambda reason: ShutdownDetail.FINISHED),
    DomainState.CRASHED: (EventType.CRASHED, lambda reason: CrashedDetail.PANICKED),
    DomainState.PMSUSPENDED: (EventType.PMSUSPENDED, lambda reason: PMSuspendedDetail.MEMORY),
}
"""How a fresh process found stopped is announced after its STARTED/BOOTED."""


def _stopped_state(status: str) -> tuple[DomainState, int]:
    return _OBSERVED.get(
        status, (DomainState.PAUSED, STATUS_TO_PAUSED.get(status, PausedReason.UNKNOWN))
    )


def observed_status(tx: Tx) -> None:
    signal = tx.signal
    assert isinstance(signal, ObservedStatus)
    dom = tx.domain()
    if not dom.active:
        tx.activate()
        if signal.running:
            target: tuple[DomainState, int] = (DomainState.RUNNING, RunningReason.BOOTED)
        elif signal.fresh and signal.status == "prelaunch":
            # Started with -S by someone else: its ``cont`` will announce it (RESUMED, STARTED).
            dom.running_reason = RunningReason.BOOTED
            tx.set_state(DomainState.PAUSED, PausedReason.STARTING_UP)
            return
        else:
            target = _stopped_state(signal.status)
        if not signal.fresh:
            tx.set_state(*target)
        elif target[0] is DomainState.RUNNING:
            tx.set_state(*target)
            tx.lifecycle(EventType.RESUMED, ResumedDetail.UNPAUSED)
            tx.lifecycle(EventType.STARTED, StartedDetail.BOOTED)
        else:
            # Started, then (before we looked) paused, shut down, crashed or PM-suspended.
            if target[0] is not DomainState.PAUSED:
                tx.set_state(DomainState.RUNNING, RunningReason.BOOTED)
            else:
                tx.set_state(*target)
            tx.lifecycle(EventType.STARTED, StartedDetail.BOOTED)
            tx.set_state(*target)
            event, detail = _ANNOUNCE[target[0]]
            tx.lifecycle(event, detail(target[1]))
    else:
        state, reason = dom.state, dom.reason
        if signal.running and state is DomainState.PAUSED:
            starting = reason == PausedReason.STARTING_UP
            tx.set_state(
                DomainState.RUNNING, RunningReason.BOOTED if starting else RunningReason.UNPAUSED
            )
        elif not signal.running and state is DomainState.RUNNING:
            tx.set_state(*_stopped_state(signal.status))
    if dom.state is DomainState.SHUTDOWN and not dom.being_destroyed:
        tx.act(act.Kill(domain=dom.name))  # "finishing shutdown sequence"


def process_lost(tx: Tx) -> None:
    """§2.5, a failed reconnect: looking again, the process is gone; it ended while nobody
    watched.  libvirt stops the domain (SHUTOFF/CRASHED) and emits no event.  virtbridge
    announces it, as the extension STOPPED/VANISHED (dropped under strict_libvirt), or
    consumers would never learn that the domain stopped."""
    dom = tx.dom
    if dom is None or not dom.active:
        return  # nothing was running: nothing to stop
    tx.set_state(DomainState.SHUTOFF, ShutoffReason.CRASHED)
    tx.lifecycle(EventType.STOPPED, StoppedDetail.VANISHED)
    tx.deactivate()
