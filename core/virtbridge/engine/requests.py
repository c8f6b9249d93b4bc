"""Extension: the shutdown request, its timeout and its escalation.

libvirt's virDomainShutdown emits nothing: a guest that ignores the power button leaves no
trace (§2.9, the review of 2011 that asked for a "requested" detail).  virtbridge announces
the request and can enforce a deadline.  The rows, in the form of ``qmp.py``:

    shutdown intent, POWERDOWN | RUNNING → RUNNING/SHUTDOWN_REQUESTED | SHUTDOWN/REQUESTED
        | ScheduleTimer (if shutdown_timeout > 0)
    Timer, deadline reached | RUNNING/SHUTDOWN_REQUESTED → RUNNING/<reason before the request>
        | SHUTDOWN/IGNORED | destroy (if on_shutdown_timeout = destroy)

A request ends when the guest shuts down (``qmp.shutdown``), when a destroy overtakes it
(``destroy.begin_destroy``) or when its process ends (``DomainRecord.clear_process_flags``).

Under ``strict_libvirt`` a requested shutdown keeps its timeout and escalation (a policy, with
libvirt's own destroy events) but announces nothing: ``Tx.emit`` drops REQUESTED and IGNORED,
the state keeps libvirt's reason, and a POWERDOWN someone else sent is not a request (libvirt
has no POWERDOWN handler).  Besides ``Tx.emit``, this module is the only reader of
``tx.strict``.
"""

from __future__ import annotations

from typing import Any

from virtbridge.engine import actions as act
from virtbridge.engine.destroy import begin_destroy
from virtbridge.engine.domain import DomainRecord, Tx
from virtbridge.engine.lifecycle import EventType, ShutdownDetail
from virtbridge.engine.policy import ShutdownTimeoutAction
from virtbridge.engine.signals import Timer
from virtbridge.engine.states import DomainState, RunningReason
from virtbridge.engine.time import Timestamp


def begin(tx: Tx, dom: DomainRecord) -> None:
    """shutdown intent, POWERDOWN | RUNNING → RUNNING/SHUTDOWN_REQUESTED | SHUTDOWN/REQUESTED
    | ScheduleTimer (if shutdown_timeout > 0)

    The timeout runs from the signal's timestamp (no clock is read)."""
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


def powerdown(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    """POWERDOWN | RUNNING, nothing pending → RUNNING/SHUTDOWN_REQUESTED | SHUTDOWN/REQUESTED
    | ScheduleTimer (if shutdown_timeout > 0)

    libvirt has no POWERDOWN handler (only the QEMU_MONITOR event, §2.3).  virtbridge takes an
    ACPI power-button press someone else sent for a shutdown request, unless a request or a
    fake reboot is already under way; under strict_libvirt it is nothing more than libvirt
    makes of it."""
    if tx.strict:
        return
    if dom.requested or dom.fake_reboot or dom.state is not DomainState.RUNNING:
        return
    begin(tx, dom)


def timer(tx: Tx) -> None:
    """Timer | RUNNING/SHUTDOWN_REQUESTED → RUNNING/<reason before the request>
    | SHUTDOWN/IGNORED | destroy (if on_shutdown_timeout = destroy)

    Only at or after a pending request's deadline: an early or stale tick does nothing."""
    signal = tx.signal
    assert isinstance(signal, Timer)
    dom = tx.dom
    if dom is None or not dom.requested or not dom.active:
        return
    stamp = signal.timestamp
    if dom.deadline is not None and stamp is not None and stamp.as_micros() < dom.deadline:
        return  # an early or stale tick
    dom.end_request()
    showing = dom.state is DomainState.RUNNING and dom.reason == RunningReason.SHUTDOWN_REQUESTED
    if showing and not tx.strict:
        tx.set_state(DomainState.RUNNING, dom.request_prior)
    tx.lifecycle(EventType.SHUTDOWN, ShutdownDetail.IGNORED)
    if dom.policy.on_shutdown_timeout is ShutdownTimeoutAction.DESTROY:
        begin_destroy(tx, dom)
