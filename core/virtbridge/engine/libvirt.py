"""Events libvirt already computed (the libvirt source): passed through unchanged, with the
domain's state taken from libvirt or, when libvirt did not say, derived from the event."""

from __future__ import annotations

from virtbridge.engine.domain import Tx
from virtbridge.engine.events import DomainRef
from virtbridge.engine.lifecycle import EventType
from virtbridge.engine.payloads import Lifecycle
from virtbridge.engine.reasons import implied_state
from virtbridge.engine.signals import LibvirtEvent


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
        target = implied_state(EventType(payload.event), payload.detail)
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
