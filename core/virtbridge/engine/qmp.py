"""The QMP rules: what each QMP event does to a domain, as libvirt's qemu driver handles it.

One function per QMP event, in the order of the reference's table (§2.3 of
``libvirt-lifecycle.md``); its docstring is its row,

    EVENT | state before → state/reason after | events, in order | action

followed by the cases and the libvirt code it follows.  :data:`QMP_RULES` at the bottom is
the index.  The events that only report on devices are in ``devices.py``; the shutdown
request a POWERDOWN may start is the extension in ``requests.py``.  The monitor's EOF and the
process's exit (§2.5) are :func:`process_gone`.

The seed's sequence, a guest powering off, is three rules: :func:`shutdown` (state
SHUTDOWN/UNKNOWN, SHUTDOWN/GUEST), :func:`stop` (the STOP that follows is ignored) and
:func:`process_gone` (STOPPED/SHUTDOWN, state SHUTOFF/SHUTDOWN).

Reading guide: ``tx.set_state`` changes (state, reason); ``tx.lifecycle``/``tx.emit`` queue
an event that carries the state at that moment; ``tx.act`` asks the process owner for an
action.  Order of calls = order of events, exactly as libvirt queues them.  A rule never
raises on hypervisor input.
"""

from __future__ import annotations

from typing import Any

from virtbridge.engine import actions as act
from virtbridge.engine import requests
from virtbridge.engine.devices import DEVICE_RULES
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
from virtbridge.engine.policy import COREDUMP_ACTIONS, RESTART_ACTIONS, LifecycleAction
from virtbridge.engine.qmp_data import Handler, disk_alias, get_str
from virtbridge.engine.reasons import resumed_detail, suspended_detail
from virtbridge.engine.signals import MonitorError, QmpEvent
from virtbridge.engine.states import (
    CrashedReason,
    DomainState,
    PausedReason,
    PMSuspendedReason,
    RunningReason,
    ShutdownReason,
    ShutoffReason,
)

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
# §2.3, §2.4  The QMP events that change a domain's state
# ------------------------------------------------------------------------------------------


def shutdown(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """SHUTDOWN | active → SHUTDOWN/UNKNOWN | SHUTDOWN/GUEST, /HOST or /FINISHED (data.guest
    true, false, absent) | Kill (one SIGTERM)

    §2.4 qemuProcessHandleShutdown.  A pending shutdown request is over.
    * already SHUTDOWN: ignored (the second SHUTDOWN QEMU sends when it gets SIGTERM);
    * a save in progress: ignored (the save stops the process itself);
    * fake reboot (reboot intent, on_crash = restart) or on_poweroff = restart: no state
      change, no event, the STOP that follows hidden; system_reset, cont (qemuProcessFakeReboot);
    * being destroyed: no Kill of its own (the destroy sent it).
    """
    if dom.state is DomainState.SHUTDOWN:
        return  # the repeated SHUTDOWN QEMU sends when it gets SIGTERM
    if dom.saving:
        return  # the save path stops the process itself (libvirt closes the monitor first)
    dom.end_request()
    if dom.fake_reboot or dom.policy.on_poweroff is LifecycleAction.RESTART:
        dom.paused_shutdown = True  # no state change, no event; the STOP that follows hidden
        if not dom.being_destroyed:
            fake_reboot(tx, dom)
        return
    # The seed's rule: a guest power-off is state SHUTDOWN/UNKNOWN and SHUTDOWN/GUEST.
    tx.set_state(DomainState.SHUTDOWN, ShutdownReason.UNKNOWN)
    tx.lifecycle(
        EventType.SHUTDOWN, SHUTDOWN_DETAIL.get(data.get("guest"), ShutdownDetail.FINISHED)
    )
    if not dom.being_destroyed:
        tx.act(act.Kill(domain=dom.name))  # libvirt: one SIGTERM; the owner escalates


def fake_reboot(tx: Tx, dom: DomainRecord) -> None:
    """qemuProcessFakeReboot: ``system_reset`` then ``cont`` (running reason CRASHED after a
    panic, BOOTED otherwise).  Clients see only the REBOOT from the reset."""
    crashed = dom.state is DomainState.CRASHED
    dom.running_reason = RunningReason.CRASHED if crashed else RunningReason.BOOTED
    tx.act(act.system_reset(dom.name))
    tx.act(act.cont(dom.name))


def stop(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """STOP | RUNNING → PAUSED/<saved reason> | SUSPENDED/<detail for the reason> | —

    §2.3 qemuProcessHandleStop.  The reason is the one libvirt saved before ``stop`` (USER for
    a suspend, SAVE for a save), UNKNOWN when QEMU stopped by itself; the detail is §2.2's
    (``reasons.suspended_detail``).  In any other state, or during a fake reboot, ignored.
    """
    reason = dom.paused_reason
    dom.paused_reason = PausedReason.UNKNOWN  # used up, whatever happens next
    if dom.state is DomainState.SHUTDOWN:
        return  # STOP after a finished shutdown: ignored (the seed's rule)
    if dom.paused_shutdown:
        return  # the STOP after a fake reboot's SHUTDOWN: hidden
    if dom.state is not DomainState.RUNNING:
        return  # already paused, crashed or PM-suspended
    tx.set_state(DomainState.PAUSED, reason)
    tx.lifecycle(EventType.SUSPENDED, suspended_detail(reason))


def resume(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """RESUME | not RUNNING → RUNNING/<saved reason, else UNPAUSED> | RESUMED/<detail for the
    reason>, then STARTED/BOOTED if it was PAUSED/STARTING_UP | —

    §2.3 qemuProcessHandleResume.  The reason is the one libvirt saved before ``cont``; the
    detail is §2.2's (``reasons.resumed_detail``).  virDomainCreate queues STARTED after the
    CPUs started.  Already RUNNING (a fake reboot's ``cont``, which ends the fake reboot):
    ignored.
    """
    if dom.paused_shutdown:  # the fake reboot's ``cont`` completed
        dom.paused_shutdown = False
        dom.fake_reboot = False
    reason = dom.running_reason or RunningReason.UNPAUSED
    dom.running_reason = RunningReason.UNKNOWN  # used up, whatever happens next
    if dom.state is DomainState.RUNNING:
        return
    starting = dom.state is DomainState.PAUSED and dom.reason == PausedReason.STARTING_UP
    tx.set_state(DomainState.RUNNING, reason)
    tx.lifecycle(EventType.RESUMED, resumed_detail(reason))
    if starting:
        tx.lifecycle(EventType.STARTED, StartedDetail.BOOTED)


def reset(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """RESET | unchanged | REBOOT | —

    §2.3 qemuProcessHandleReset.  Every RESET is a REBOOT (SeaBIOS adds its own after a
    reset, each reported) and ends a fake reboot; while PAUSED/STARTING_UP it is ignored
    (libvirt resets during startup itself).
    """
    if dom.state is DomainState.PAUSED and dom.reason == PausedReason.STARTING_UP:
        return
    dom.fake_reboot = False
    tx.emit(EventID.REBOOT, EMPTY)


def watchdog(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """WATCHDOG | RUNNING → PAUSED/WATCHDOG (action pause only) | WATCHDOG (its action), then
    SUSPENDED/WATCHDOG if paused | —"""
    action = WATCHDOG_ACTIONS.get(get_str(data, "action"), WatchdogAction.NONE)
    tx.emit(EventID.WATCHDOG, Watchdog(action))
    if action is WatchdogAction.PAUSE and dom.state is DomainState.RUNNING:
        tx.set_state(DomainState.PAUSED, PausedReason.WATCHDOG)
        tx.lifecycle(EventType.SUSPENDED, SuspendedDetail.WATCHDOG)


def block_io_error(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """BLOCK_IO_ERROR | RUNNING → PAUSED/IOERROR (action stop only) | IO_ERROR,
    IO_ERROR_REASON, then SUSPENDED/IOERROR if paused | —

    The alias is QEMU's device name without ``drive-`` (the engine has no domain XML)."""
    action = IO_ERROR_ACTIONS.get(get_str(data, "action"), IoErrorAction.NONE)
    alias = disk_alias(get_str(data, "device") or get_str(data, "node-name"))
    reason = "enospc" if data.get("nospace") is True else ""
    tx.emit(EventID.IO_ERROR, IoError("", alias, action))
    tx.emit(EventID.IO_ERROR_REASON, IoErrorReason("", alias, action, reason))
    if action is IoErrorAction.PAUSE and dom.state is DomainState.RUNNING:
        tx.set_state(DomainState.PAUSED, PausedReason.IOERROR)
        tx.lifecycle(EventType.SUSPENDED, SuspendedDetail.IOERROR)


def suspend(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """SUSPEND (S3) | RUNNING → PMSUSPENDED/UNKNOWN | PMSUSPEND always, then
    PMSUSPENDED/MEMORY if the state changed | —"""
    _pm_suspend(tx, dom, EventID.PMSUSPEND, PMSuspendedDetail.MEMORY)


def suspend_disk(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """SUSPEND_DISK (S4) | RUNNING → PMSUSPENDED/UNKNOWN | PMSUSPEND_DISK always, then
    PMSUSPENDED/DISK if the state changed | —  (the guest then powers off: ``shutdown``)"""
    _pm_suspend(tx, dom, EventID.PMSUSPEND_DISK, PMSuspendedDetail.DISK)


def _pm_suspend(tx: Tx, dom: DomainRecord, kind: EventID, detail: PMSuspendedDetail) -> None:
    changed = dom.state is DomainState.RUNNING
    if changed:
        tx.set_state(DomainState.PMSUSPENDED, PMSuspendedReason.UNKNOWN)
    tx.emit(kind, PMReason(0))
    if changed:
        tx.lifecycle(EventType.PMSUSPENDED, detail)


def wakeup(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """WAKEUP | PMSUSPENDED → RUNNING/WAKEUP | PMWAKEUP always, then STARTED/WAKEUP if the
    state changed | —"""
    changed = dom.state is DomainState.PMSUSPENDED
    if changed:
        tx.set_state(DomainState.RUNNING, RunningReason.WAKEUP)
    tx.emit(EventID.PMWAKEUP, PMReason(0))
    if changed:
        tx.lifecycle(EventType.STARTED, StartedDetail.WAKEUP)


def guest_panicked(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """GUEST_PANICKED | active → CRASHED/PANICKED | CRASHED/PANICKED | then per on_crash:

    §2.6 processGuestPanicEvent.
    * destroy, coredump-destroy: → SHUTOFF/CRASHED, STOPPED/CRASHED (ID -1); (CoreDump,) Kill;
    * restart, coredump-restart: fake reboot, (CoreDump,) system_reset, cont; QEMU's RESET
      and RESUME then give REBOOT, RESUMED/UNPAUSED and RUNNING/CRASHED;
    * preserve (and rename-restart, which the qemu driver refuses): stays CRASHED/PANICKED.
    With a restart action and QEMU's panic action pause, SUSPENDED/PAUSED (PAUSED/UNKNOWN)
    comes first: QEMU's STOP races the panic worker, and libvirt 9.0 was seen to let the STOP
    win every time with a restart action (and never with the others).
    """
    on_crash = dom.policy.on_crash
    if (
        on_crash in RESTART_ACTIONS
        and get_str(data, "action") == "pause"
        and dom.state is DomainState.RUNNING
    ):
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


def guest_crashloaded(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """GUEST_CRASHLOADED | unchanged | CRASHED/CRASHLOADED | —  (the guest runs on)"""
    tx.lifecycle(EventType.CRASHED, CrashedDetail.CRASHLOADED)


# ------------------------------------------------------------------------------------------
# §2.5  Monitor EOF / process exit, and a broken monitor
# ------------------------------------------------------------------------------------------


def process_gone(tx: Tx) -> None:
    """EOF or exit | SHUTDOWN → SHUTOFF/SHUTDOWN | STOPPED/SHUTDOWN (live ID) | —

    §2.5 processMonitorEOFEvent; the first of the monitor's EOF and the process's exit stops
    the domain, the second finds it inactive and does nothing.  Other states:
    * PAUSED/STARTING_UP → SHUTOFF/FAILED, no event (the start failed);
    * being destroyed → SHUTOFF/DESTROYED, STOPPED/DESTROYED (ID -1);
    * a save in progress → SHUTOFF/SAVED, STOPPED/SAVED (ID -1);
    * anything else → SHUTOFF/CRASHED, STOPPED/FAILED (live ID): "monitor closed without
      SHUTDOWN event; assuming the domain crashed".
    """
    dom = tx.dom
    if dom is None or not dom.active:
        if dom is not None:
            dom.lingering = False  # the process we stopped earlier is gone now
        return  # already stopped: a second EOF, or the exit after the EOF
    if dom.state is DomainState.PAUSED and dom.reason == PausedReason.STARTING_UP:
        tx.set_state(DomainState.SHUTOFF, ShutoffReason.FAILED)
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
        # The seed's rule: the exit after a guest shutdown is STOPPED/SHUTDOWN, created before
        # the stop (so with the live ID), and the state SHUTOFF/SHUTDOWN.
        tx.set_state(DomainState.SHUTOFF, ShutoffReason.SHUTDOWN)
        tx.lifecycle(EventType.STOPPED, StoppedDetail.SHUTDOWN)
        tx.deactivate()
    else:
        tx.set_state(DomainState.SHUTOFF, ShutoffReason.CRASHED)
        tx.lifecycle(EventType.STOPPED, StoppedDetail.FAILED)
        tx.deactivate()


def monitor_error(tx: Tx) -> None:
    """monitor I/O or protocol error | unchanged | CONTROL_ERROR (if active) | —"""
    assert isinstance(tx.signal, MonitorError)
    if tx.dom is not None and tx.dom.active:
        tx.emit(EventID.CONTROL_ERROR, EMPTY)


# ------------------------------------------------------------------------------------------
# Dispatch, and the index
# ------------------------------------------------------------------------------------------


def qmp_event(tx: Tx) -> None:
    """Every QMP event: first the generic monitor event (if asked for), then its rule.

    An event for a domain with no live process is ignored, as libvirt does (after a stop
    already reported), or, for a domain never seen, is a monitor event plus a Resync."""
    signal = tx.signal
    assert isinstance(signal, QmpEvent)
    name = signal.event
    rule = QMP_RULES.get(name)
    dom = tx.dom
    known = dom is not None and dom.active
    generic = tx.engine.all_monitor_events or (
        (rule is None and name not in LIBVIRT_SILENT) or name in LIBVIRT_UNHANDLED
    )
    if not known:
        if dom is None:
            tx.emit(EventID.QEMU_MONITOR, QemuMonitor(name, signal.data))
            tx.act(act.Resync(domain=signal.domain))
        elif tx.engine.all_monitor_events:
            tx.emit(EventID.QEMU_MONITOR, QemuMonitor(name, signal.data))
        return
    assert dom is not None
    if generic:
        tx.emit(EventID.QEMU_MONITOR, QemuMonitor(name, signal.data))
    if rule is not None:
        rule(tx, dom, signal.data if isinstance(signal.data, dict) else {})


QMP_RULES: dict[str, Handler] = {
    "SHUTDOWN": shutdown,
    "STOP": stop,
    "RESUME": resume,
    "RESET": reset,
    "POWERDOWN": requests.powerdown,  # libvirt: no handler; the extension: a shutdown request
    "WATCHDOG": watchdog,
    "BLOCK_IO_ERROR": block_io_error,
    "SUSPEND": suspend,
    "SUSPEND_DISK": suspend_disk,
    "WAKEUP": wakeup,
    "GUEST_PANICKED": guest_panicked,
    "GUEST_CRASHLOADED": guest_crashloaded,
    **DEVICE_RULES,
}
"""QMP event name → rule.  Anything else reaches clients only as a QEMU_MONITOR event."""

QMP_HANDLERS = QMP_RULES
"""The table's earlier name."""

LIBVIRT_UNHANDLED = frozenset({"POWERDOWN"})
"""Events in the table that libvirt itself has no handler for (virtbridge extensions)."""

LIBVIRT_SILENT = frozenset(
    {"MIGRATION", "JOB_STATUS_CHANGE", "DUMP_COMPLETED", "BLOCK_JOB_PENDING", "BLOCK_JOB_ERROR"}
)
"""Events libvirt consumes for its own job bookkeeping without emitting a domain event.

They are not "unknown", so in the default ``monitor_events = "unhandled"`` mode they are not
forwarded either; ``monitor_events = "all"`` forwards them like every other QMP event."""
