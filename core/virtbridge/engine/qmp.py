"""How the hypervisor's signals change a domain: libvirt's qemu driver, as tables.

Each entry cites the section of ``libvirt-lifecycle.md`` it implements (the qemu driver's
``qemu_process.c`` handlers).  A transition only ever reads the :class:`Tx` and calls its
verbs; it never raises on hypervisor input.  Control-plane intents are in
``_transitions_intents.py``, device events in ``_transitions_devices.py``, the reconnect
resync in ``_transitions_status.py``.

Reading guide: ``tx.set_state`` changes (state, reason); ``tx.lifecycle``/``tx.emit`` queue
an event that carries the state at that moment; ``tx.act`` asks the process owner for an
action.  Order of calls = order of events, exactly as libvirt queues them.
"""

from __future__ import annotations

from typing import Any

from virtbridge.engine import actions as act
from virtbridge.engine.devices import DEVICE_HANDLERS
from virtbridge.engine.domain import DomainRecord, Tx
from virtbridge.engine.lifecycle import (
    CrashedDetail,
    EventType,
    PMSuspendedDetail,
    ShutdownDetail,
    StartedDetail,
    StoppedDetail,
    SuspendedDetail,
)
from virtbridge.engine.payloads import (
    EMPTY,
    EventID,
    IoError,
    IoErrorAction,
    IoErrorReason,
    PMReason,
    QemuMonitor,
    Watchdog,
    WatchdogAction,
)
from virtbridge.engine.policy import (
    COREDUMP_ACTIONS,
    RESTART_ACTIONS,
    LifecycleAction,
    ShutdownTimeoutAction,
)
from virtbridge.engine.qmp_data import Handler, disk_alias, get_str
from virtbridge.engine.reasons import resumed_detail, suspended_detail
from virtbridge.engine.signals import MonitorError, QmpEvent, Timer
from virtbridge.engine.states import (
    CrashedReason,
    DomainState,
    PausedReason,
    PMSuspendedReason,
    RunningReason,
    ShutdownReason,
    ShutoffReason,
)
from virtbridge.engine.time import Timestamp

# §2.3, §2.4  values in QMP ``data``

SHUTDOWN_DETAIL: dict[Any, ShutdownDetail] = {
    True: ShutdownDetail.GUEST,
    False: ShutdownDetail.HOST,
}
"""QMP SHUTDOWN ``data.guest`` (QEMU 2.10+) → detail; absent (or not a boolean) → FINISHED."""

WATCHDOG_ACTIONS: dict[str, WatchdogAction] = {
    "none": WatchdogAction.NONE,
    "pause": WatchdogAction.PAUSE,
    "reset": WatchdogAction.RESET,
    "poweroff": WatchdogAction.POWEROFF,
    "shutdown": WatchdogAction.SHUTDOWN,
    "debug": WatchdogAction.DEBUG,
    "inject-nmi": WatchdogAction.INJECTNMI,
}

IO_ERROR_ACTIONS: dict[str, IoErrorAction] = {
    "ignore": IoErrorAction.NONE,
    "stop": IoErrorAction.PAUSE,
    "report": IoErrorAction.REPORT,
}


# ------------------------------------------------------------------------------------------
# §2.4  SHUTDOWN, and the kill-or-fake-reboot that follows it
# ------------------------------------------------------------------------------------------


def fake_reboot(tx: Tx, dom: DomainRecord) -> None:
    """qemuProcessFakeReboot: ``system_reset`` then ``cont`` (running reason CRASHED after a
    panic, BOOTED otherwise).  Clients see only the REBOOT from the reset."""
    crashed = dom.state is DomainState.CRASHED
    dom.running_reason = RunningReason.CRASHED if crashed else RunningReason.BOOTED
    tx.act(act.system_reset(dom.name))
    tx.act(act.cont(dom.name))


def qmp_shutdown(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    if dom.state is DomainState.SHUTDOWN:
        return  # the repeated SHUTDOWN QEMU sends when it gets SIGTERM
    if dom.saving:
        return  # the save path stops the process itself (libvirt closes the monitor first)
    dom.requested = False
    dom.deadline = None
    if dom.fake_reboot or dom.policy.on_poweroff is LifecycleAction.RESTART:
        # Fake-reboot case: no state change, no event; the STOP that follows is hidden.
        dom.paused_shutdown = True
        if not dom.being_destroyed:
            fake_reboot(tx, dom)
        return
    tx.set_state(DomainState.SHUTDOWN, ShutdownReason.UNKNOWN)
    tx.lifecycle(
        EventType.SHUTDOWN, SHUTDOWN_DETAIL.get(data.get("guest"), ShutdownDetail.FINISHED)
    )
    if not dom.being_destroyed:
        tx.act(act.Kill(domain=dom.name))  # libvirt: one SIGTERM; the owner escalates


# ------------------------------------------------------------------------------------------
# §2.3  The other QMP events
# ------------------------------------------------------------------------------------------


def qmp_stop(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    reason = dom.paused_reason
    dom.paused_reason = PausedReason.UNKNOWN
    if dom.state is DomainState.RUNNING and not dom.paused_shutdown:
        tx.set_state(DomainState.PAUSED, reason)
        tx.lifecycle(EventType.SUSPENDED, suspended_detail(reason))


def qmp_resume(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    if dom.paused_shutdown:  # the fake reboot's ``cont`` completed
        dom.paused_shutdown = False
        dom.fake_reboot = False
    reason = dom.running_reason or RunningReason.UNPAUSED
    dom.running_reason = RunningReason.UNKNOWN
    if dom.state is DomainState.RUNNING:
        return
    starting = dom.state is DomainState.PAUSED and dom.reason == PausedReason.STARTING_UP
    tx.set_state(DomainState.RUNNING, reason)
    tx.lifecycle(EventType.RESUMED, resumed_detail(reason))
    if starting:  # virDomainCreate queues STARTED after the CPUs started
        tx.lifecycle(EventType.STARTED, StartedDetail.BOOTED)


def qmp_reset(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    if dom.state is DomainState.PAUSED and dom.reason == PausedReason.STARTING_UP:
        return  # libvirt resets during startup itself
    dom.fake_reboot = False
    tx.emit(EventID.REBOOT, EMPTY)


def qmp_powerdown(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """Extension: an ACPI power-button press someone sent is a shutdown request."""
    if tx.strict or dom.requested or dom.fake_reboot or dom.state is not DomainState.RUNNING:
        return
    begin_shutdown_request(tx, dom)


def qmp_watchdog(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    action = WATCHDOG_ACTIONS.get(get_str(data, "action"), WatchdogAction.NONE)
    tx.emit(EventID.WATCHDOG, Watchdog(action))
    if action is WatchdogAction.PAUSE and dom.state is DomainState.RUNNING:
        tx.set_state(DomainState.PAUSED, PausedReason.WATCHDOG)
        tx.lifecycle(EventType.SUSPENDED, SuspendedDetail.WATCHDOG)


def qmp_block_io_error(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    action = IO_ERROR_ACTIONS.get(get_str(data, "action"), IoErrorAction.NONE)
    alias = disk_alias(get_str(data, "device") or get_str(data, "node-name"))
    reason = "enospc" if data.get("nospace") is True else ""
    tx.emit(EventID.IO_ERROR, IoError("", alias, action))
    tx.emit(EventID.IO_ERROR_REASON, IoErrorReason("", alias, action, reason))
    if action is IoErrorAction.PAUSE and dom.state is DomainState.RUNNING:
        tx.set_state(DomainState.PAUSED, PausedReason.IOERROR)
        tx.lifecycle(EventType.SUSPENDED, SuspendedDetail.IOERROR)


def _pm_suspend(kind: EventID, detail: PMSuspendedDetail) -> Handler:
    def handler(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
        changed = dom.state is DomainState.RUNNING
        if changed:
            tx.set_state(DomainState.PMSUSPENDED, PMSuspendedReason.UNKNOWN)
        tx.emit(kind, PMReason(0))
        if changed:
            tx.lifecycle(EventType.PMSUSPENDED, detail)

    return handler


def qmp_wakeup(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    changed = dom.state is DomainState.PMSUSPENDED
    if changed:
        tx.set_state(DomainState.RUNNING, RunningReason.WAKEUP)
    tx.emit(EventID.PMWAKEUP, PMReason(0))
    if changed:
        tx.lifecycle(EventType.STARTED, StartedDetail.WAKEUP)


def qmp_guest_panicked(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """§2.6 processGuestPanicEvent."""
    on_crash = dom.policy.on_crash
    if (
        on_crash in RESTART_ACTIONS
        and get_str(data, "action") == "pause"
        and dom.state is DomainState.RUNNING
    ):
        # QEMU's STOP races the panic worker; with a restart action libvirt 9.0 was seen to
        # let the STOP win every time (and never with the other actions), so it shows here.
        tx.set_state(DomainState.PAUSED, PausedReason.UNKNOWN)
        tx.lifecycle(EventType.SUSPENDED, SuspendedDetail.PAUSED)
    tx.set_state(DomainState.CRASHED, CrashedReason.PANICKED)
    tx.lifecycle(EventType.CRASHED, CrashedDetail.PANICKED)
    if on_crash in COREDUMP_ACTIONS:
        tx.act(act.CoreDump(domain=dom.name))
    if on_crash in (LifecycleAction.DESTROY, LifecycleAction.COREDUMP_DESTROY):
        tx.set_state(DomainState.SHUTOFF, ShutoffReason.CRASHED)
        tx.deactivate(process_alive=True)
        tx.lifecycle(EventType.STOPPED, StoppedDetail.CRASHED)
        tx.act(act.Kill(domain=dom.name))
    elif on_crash in RESTART_ACTIONS:
        dom.fake_reboot = True
        fake_reboot(tx, dom)
    # preserve (and rename-restart, which the qemu driver refuses): stay CRASHED/PANICKED.


def qmp_guest_crashloaded(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    tx.lifecycle(EventType.CRASHED, CrashedDetail.CRASHLOADED)


QMP_HANDLERS: dict[str, Handler] = {
    "SHUTDOWN": qmp_shutdown,
    "STOP": qmp_stop,
    "RESUME": qmp_resume,
    "RESET": qmp_reset,
    "POWERDOWN": qmp_powerdown,
    "WATCHDOG": qmp_watchdog,
    "BLOCK_IO_ERROR": qmp_block_io_error,
    "SUSPEND": _pm_suspend(EventID.PMSUSPEND, PMSuspendedDetail.MEMORY),
    "SUSPEND_DISK": _pm_suspend(EventID.PMSUSPEND_DISK, PMSuspendedDetail.DISK),
    "WAKEUP": qmp_wakeup,
    "GUEST_PANICKED": qmp_guest_panicked,
    "GUEST_CRASHLOADED": qmp_guest_crashloaded,
    **DEVICE_HANDLERS,
}
"""QMP event name → transition.  Anything else reaches clients only as a QEMU_MONITOR event."""

LIBVIRT_UNHANDLED = frozenset({"POWERDOWN"})
"""Events in the table that libvirt itself has no handler for (virtbridge extensions)."""

LIBVIRT_SILENT = frozenset(
    {"MIGRATION", "JOB_STATUS_CHANGE", "DUMP_COMPLETED", "BLOCK_JOB_PENDING", "BLOCK_JOB_ERROR"}
)
"""Events libvirt consumes for its own job bookkeeping without emitting a domain event.

They are not "unknown", so in the default ``monitor_events = "unhandled"`` mode they are not
forwarded either; ``monitor_events = "all"`` forwards them like every other QMP event."""


def qmp_event(tx: Tx) -> None:
    """Every QMP event: first the generic monitor event (if asked for), then its handler."""
    signal = tx.signal
    assert isinstance(signal, QmpEvent)
    name = signal.event
    handler = QMP_HANDLERS.get(name)
    dom = tx.dom
    known = dom is not None and dom.active
    generic = tx.engine.all_monitor_events or (
        (handler is None and name not in LIBVIRT_SILENT) or name in LIBVIRT_UNHANDLED
    )
    if not known:
        # An event for a domain with no live process: after a stop we already reported
        # (ignore it, as libvirt does), or from a monitor we never synchronised with.
        if dom is None:
            tx.emit(EventID.QEMU_MONITOR, QemuMonitor(name, signal.data))
            tx.act(act.Resync(domain=signal.domain))
        elif tx.engine.all_monitor_events:
            tx.emit(EventID.QEMU_MONITOR, QemuMonitor(name, signal.data))
        return
    assert dom is not None
    if generic:
        tx.emit(EventID.QEMU_MONITOR, QemuMonitor(name, signal.data))
    if handler is not None:
        handler(tx, dom, signal.data if isinstance(signal.data, dict) else {})


# ------------------------------------------------------------------------------------------
# §2.5  Monitor EOF / process exit
# ------------------------------------------------------------------------------------------


def process_gone(tx: Tx) -> None:
    dom = tx.dom
    if dom is None or not dom.active:
        if dom is not None:
            dom.lingering = False  # the process we stopped earlier is gone now
        return  # already stopped: a second EOF, or the exit after the EOF
    if dom.state is DomainState.PAUSED and dom.reason == PausedReason.STARTING_UP:
        tx.set_state(DomainState.SHUTOFF, ShutoffReason.FAILED)  # start failed: no event
        tx.deactivate()
    elif dom.being_destroyed:
        tx.set_state(DomainState.SHUTOFF, ShutoffReason.DESTROYED)
        tx.deactivate()
        tx.lifecycle(EventType.STOPPED, StoppedDetail.DESTROYED)
    elif dom.saving:
        tx.set_state(DomainState.SHUTOFF, ShutoffReason.SAVED)
        tx.deactivate()
        tx.lifecycle(EventType.STOPPED, StoppedDetail.SAVED)
    elif dom.state is DomainState.SHUTDOWN:
        tx.set_state(DomainState.SHUTOFF, ShutoffReason.SHUTDOWN)
        tx.lifecycle(EventType.STOPPED, StoppedDetail.SHUTDOWN)  # created before the stop: live ID
        tx.deactivate()
    else:
        # "monitor closed without SHUTDOWN event; assuming the domain crashed"
        tx.set_state(DomainState.SHUTOFF, ShutoffReason.CRASHED)
        tx.lifecycle(EventType.STOPPED, StoppedDetail.FAILED)
        tx.deactivate()


def monitor_error(tx: Tx) -> None:
    assert isinstance(tx.signal, MonitorError)
    if tx.dom is not None and tx.dom.active:
        tx.emit(EventID.CONTROL_ERROR, EMPTY)


# ------------------------------------------------------------------------------------------
# Extension: the shutdown request and its timeout
# ------------------------------------------------------------------------------------------


def begin_shutdown_request(tx: Tx, dom: DomainRecord) -> None:
    """Remember a shutdown request; announce it (unless strict) and arm its timeout."""
    dom.requested = True
    timeout = dom.policy.shutdown_timeout
    stamp = tx.signal.timestamp
    dom.deadline = None
    if timeout > 0 and stamp is not None:
        dom.deadline = stamp.as_micros() + round(timeout * 1_000_000)
    if not tx.strict:  # the extension's running reason; strict keeps libvirt's
        if dom.reason != RunningReason.SHUTDOWN_REQUESTED:
            dom.request_prior = dom.reason
        tx.set_state(DomainState.RUNNING, RunningReason.SHUTDOWN_REQUESTED)
    tx.lifecycle(EventType.SHUTDOWN, ShutdownDetail.REQUESTED)
    if timeout > 0:
        at = (
            None
            if dom.deadline is None
            else Timestamp(dom.deadline // 1_000_000, dom.deadline % 1_000_000)
        )
        tx.act(act.ScheduleTimer(domain=dom.name, delay=timeout, at=at))


def timer(tx: Tx) -> None:
    signal = tx.signal
    assert isinstance(signal, Timer)
    dom = tx.dom
    if dom is None or not dom.requested or not dom.active:
        return
    stamp = signal.timestamp
    if dom.deadline is not None and stamp is not None and stamp.as_micros() < dom.deadline:
        return  # an early or stale tick
    dom.requested = False
    dom.deadline = None
    showing = dom.state is DomainState.RUNNING and dom.reason == RunningReason.SHUTDOWN_REQUESTED
    if showing and not tx.strict:
        tx.set_state(DomainState.RUNNING, dom.request_prior)
    tx.lifecycle(EventType.SHUTDOWN, ShutdownDetail.IGNORED)
    if dom.policy.on_shutdown_timeout is ShutdownTimeoutAction.DESTROY:
        begin_destroy(tx, dom)


def begin_destroy(tx: Tx, dom: DomainRecord) -> None:
    """virDomainDestroy: kill now; the events come from QEMU's SHUTDOWN and the exit."""
    dom.being_destroyed = True
    dom.fake_reboot = False
    dom.requested = False
    dom.deadline = None
    tx.act(act.Kill(domain=dom.name))
