"""Control-plane intents: libvirt's public APIs in the qemu driver (§2.7), as a table.

An intent is a request from the control plane.  Like libvirt's API it can be refused (the
domain is not running, already running, ...): the transition then calls ``tx.reject`` with
libvirt's message and changes nothing.  Like libvirt, most intents emit nothing themselves:
they save a reason and ask for a monitor command, and the QMP event that follows (STOP,
RESUME, RESET, SHUTDOWN) produces the event.
"""

from __future__ import annotations

from collections.abc import Callable

from virtbridge.engine import actions as act
from virtbridge.engine import requests
from virtbridge.engine.destroy import begin_destroy
from virtbridge.engine.domain import DomainRecord, Tx
from virtbridge.engine.lifecycle import (
    DefinedDetail,
    EventType,
    StartedDetail,
    SuspendedDetail,
    UndefinedDetail,
)
from virtbridge.engine.policy import LifecycleAction
from virtbridge.engine.signals import Intent, IntentKind
from virtbridge.engine.states import DomainState, PausedReason, RunningReason

NOT_RUNNING = "Requested operation is not valid: domain is not running"
ALREADY_RUNNING = "Requested operation is not valid: domain is already running"
PM_SUSPENDED = "Requested operation is not valid: domain is pmsuspended"
NO_DOMAIN = "Domain not found: no domain with matching name '{name}'"
NO_JOB = "Requested operation is not valid: no job is active on the domain"


def _active(tx: Tx) -> DomainRecord | None:
    """The domain if it is running (any active state); otherwise reject like libvirt."""
    dom = tx.dom
    if dom is None or not dom.active:
        tx.reject(NOT_RUNNING if dom is not None else NO_DOMAIN.format(name=tx.name))
        return None
    return dom


def _apply_policy(tx: Tx, intent: Intent) -> bool:
    """Apply the intent's policy fields; reject (and return False) if the result is invalid."""
    if intent.policy is None:
        return True
    current = tx.dom.policy if tx.dom is not None else tx.engine.policy_for(tx.name)
    policy = intent.policy.apply(current)
    problems = policy.problems()
    if problems:
        tx.reject("unsupported configuration: " + "; ".join(problems))
        return False
    tx.domain().policy = policy
    return True


def define(tx: Tx, intent: Intent) -> None:
    dom = tx.dom
    if dom is not None and intent.uuid is not None and dom.uuid not in (None, intent.uuid):
        tx.reject(f"operation failed: domain '{tx.name}' already exists with uuid {dom.uuid}")
        return
    if not _apply_policy(tx, intent):
        return
    dom = tx.domain()
    if intent.uuid is not None and dom.uuid != intent.uuid:
        dom.uuid = intent.uuid
        dom.refresh_ref()
    detail = DefinedDetail.UPDATED if dom.persistent else DefinedDetail.ADDED
    dom.persistent = True
    tx.lifecycle(EventType.DEFINED, detail)


def undefine(tx: Tx, intent: Intent) -> None:
    dom = tx.dom
    if dom is None:
        tx.reject(NO_DOMAIN.format(name=tx.name))
        return
    if not dom.persistent:
        tx.reject("Requested operation is not valid: cannot undefine transient domain")
        return
    dom.persistent = False  # an inactive transient record is dropped after this signal
    dom.managed_save = False
    tx.lifecycle(EventType.UNDEFINED, UndefinedDetail.REMOVED)


def configure_process(tx: Tx, dom: DomainRecord) -> None:
    """What a new process must be told before its CPUs run, from the domain's effective policy
    (libvirt puts it on QEMU's command line): on_reboot = destroy makes a guest reboot a
    shutdown (``-action reboot=shutdown``), so the SHUTDOWN handler stops the domain."""
    if dom.policy.on_reboot is LifecycleAction.DESTROY:
        tx.act(act.set_action(dom.name, reboot="shutdown"))


def start(tx: Tx, intent: Intent) -> None:
    """virDomainCreate: start paused (STARTING_UP), then ``cont``; RESUME announces it."""
    dom = tx.dom
    if dom is not None and dom.active:
        tx.reject("Requested operation is not valid: domain is already running")
        return
    if not _apply_policy(tx, intent):
        return
    dom = tx.domain()
    if dom.managed_save and intent.intent is IntentKind.START:
        dom.managed_save = False
        _restore(tx, dom, intent)
        return
    tx.activate()
    configure_process(tx, dom)
    if intent.intent is IntentKind.START_PAUSED:
        # The CPUs never start: state set directly, STARTED then SUSPENDED.
        tx.set_state(DomainState.PAUSED, PausedReason.USER)
        tx.lifecycle(EventType.STARTED, StartedDetail.BOOTED)
        tx.lifecycle(EventType.SUSPENDED, SuspendedDetail.PAUSED)
        return
    tx.set_state(DomainState.PAUSED, PausedReason.STARTING_UP)
    dom.running_reason = RunningReason.BOOTED
    tx.act(act.cont(dom.name))


def restore(tx: Tx, intent: Intent) -> None:
    dom = tx.dom
    if dom is not None and dom.active:
        tx.reject("Requested operation is not valid: domain is already active")
        return
    if not _apply_policy(tx, intent):
        return
    _restore(tx, tx.domain(), intent)


def _restore(tx: Tx, dom: DomainRecord, intent: Intent) -> None:
    """virDomainRestore: incoming migration leaves PAUSED/MIGRATION, STARTED/RESTORED, then
    ``cont`` (RESUMED/FROM_SNAPSHOT from the RESUME rule) unless it stays paused."""
    tx.activate()
    configure_process(tx, dom)
    tx.set_state(DomainState.PAUSED, PausedReason.MIGRATION)
    tx.lifecycle(EventType.STARTED, StartedDetail.RESTORED)
    if intent.image_paused or intent.paused:
        detail = SuspendedDetail.RESTORED if intent.image_paused else SuspendedDetail.PAUSED
        tx.lifecycle(EventType.SUSPENDED, detail)
        return
    dom.running_reason = RunningReason.RESTORED
    tx.act(act.cont(dom.name))


def suspend(tx: Tx, intent: Intent) -> None:
    dom = _active(tx)
    if dom is None:
        return
    if dom.state is DomainState.PMSUSPENDED:
        tx.reject(PM_SUSPENDED)
    elif dom.state is not DomainState.PAUSED:  # already paused: a silent no-op
        dom.paused_reason = PausedReason.USER
        tx.act(act.stop(dom.name))


def resume(tx: Tx, intent: Intent) -> None:
    dom = _active(tx)
    if dom is None:
        return
    if dom.state is DomainState.PMSUSPENDED:
        tx.reject(PM_SUSPENDED)
    elif dom.state is DomainState.RUNNING:
        tx.reject(ALREADY_RUNNING)
    elif dom.state in (DomainState.PAUSED, DomainState.CRASHED):
        dom.running_reason = RunningReason.UNPAUSED
        tx.act(act.cont(dom.name))


def shutdown(tx: Tx, intent: Intent) -> None:
    """virDomainShutdown: ACPI power button.  libvirt emits nothing now; virtbridge starts a
    shutdown request (``requests.py``: the SHUTDOWN/REQUESTED extension and the timeout)."""
    dom = _active(tx)
    if dom is None:
        return
    if dom.state is not DomainState.RUNNING:
        tx.reject(NOT_RUNNING)
        return
    if dom.policy.on_poweroff is LifecycleAction.RESTART:
        _reboot(tx, dom)  # libvirt turns the shutdown into a reboot request
        return
    tx.act(act.system_powerdown(dom.name))
    if not dom.requested:
        requests.begin(tx, dom)


def reboot(tx: Tx, intent: Intent) -> None:
    dom = _active(tx)
    if dom is None:
        return
    if dom.policy.on_reboot in (LifecycleAction.DESTROY, LifecycleAction.PRESERVE):
        shutdown(tx, intent)  # on_reboot=destroy: a reboot request is a shutdown request
        return
    _reboot(tx, dom)


def _reboot(tx: Tx, dom: DomainRecord) -> None:
    """ACPI reboot: power button, and when the guest's SHUTDOWN comes, a fake reboot."""
    dom.fake_reboot = True
    tx.act(act.system_powerdown(dom.name, reboot=True))


def reset(tx: Tx, intent: Intent) -> None:
    dom = _active(tx)
    if dom is None:
        return
    dom.fake_reboot = False
    if dom.state is DomainState.CRASHED:
        tx.set_state(DomainState.PAUSED, PausedReason.CRASHED)
    tx.act(act.system_reset(dom.name))


def destroy(tx: Tx, intent: Intent) -> None:
    dom = _active(tx)
    if dom is not None:
        begin_destroy(tx, dom)


def save(tx: Tx, intent: Intent) -> None:
    dom = _active(tx)
    if dom is None:
        return
    managed = intent.intent is IntentKind.MANAGED_SAVE
    if managed and not dom.persistent:
        tx.reject("Requested operation is not valid: cannot do managed save for transient domain")
        return
    if dom.state is DomainState.RUNNING:
        dom.paused_reason = PausedReason.SAVE
        tx.act(act.stop(dom.name))
    dom.saving = True
    dom.managed_save = managed
    tx.act(act.SaveState(domain=dom.name, managed=managed))


def save_failed(tx: Tx, intent: Intent) -> None:
    """virDomainSave's failure path: the image was not written and the process lives on.

    The save job ends (a later SHUTDOWN or STOP is handled as usual again).  A domain the save
    paused is resumed with reason SAVE_CANCELED (the RESUME handler then emits RESUMED/UNPAUSED);
    one that was paused before the save stays paused, with no event.
    """
    dom = _active(tx)
    if dom is None:
        return
    if not dom.saving:
        tx.reject(NO_JOB)
        return
    dom.saving = False
    dom.managed_save = False
    # The save's own STOP either came (PAUSED/SAVE) or is still on its way (its reason is
    # waiting in paused_reason): either way the save paused a running domain.
    stopped = dom.state is DomainState.PAUSED and dom.reason == PausedReason.SAVE
    stopping = dom.state is DomainState.RUNNING and dom.paused_reason == PausedReason.SAVE
    if stopped or stopping:
        dom.running_reason = RunningReason.SAVE_CANCELED
        tx.act(act.cont(dom.name))


def pm_wakeup(tx: Tx, intent: Intent) -> None:
    dom = _active(tx)
    if dom is not None:
        tx.act(act.system_wakeup(dom.name))


INTENTS: dict[IntentKind, Callable[[Tx, Intent], None]] = {
    IntentKind.DEFINE: define,
    IntentKind.UNDEFINE: undefine,
    IntentKind.START: start,
    IntentKind.START_PAUSED: start,
    IntentKind.SUSPEND: suspend,
    IntentKind.RESUME: resume,
    IntentKind.SHUTDOWN: shutdown,
    IntentKind.REBOOT: reboot,
    IntentKind.RESET: reset,
    IntentKind.DESTROY: destroy,
    IntentKind.SAVE: save,
    IntentKind.RESTORE: restore,
    IntentKind.MANAGED_SAVE: save,
    IntentKind.PM_WAKEUP: pm_wakeup,
    IntentKind.SAVE_FAILED: save_failed,
}


def intent(tx: Tx) -> None:
    signal = tx.signal
    assert isinstance(signal, Intent)
    INTENTS[signal.intent](tx, signal)
