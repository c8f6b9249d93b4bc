"""The per-domain record and the transaction a transition works in.

A transition (the rules in ``qmp.py``, ``control.py``, ``requests.py``, ...) receives a
:class:`Tx`: the signal, the domain record and a handful of verbs (set the state, emit an
event, ask for an action, reject an intent).  The verbs keep the bookkeeping (domain IDs, the
cached domain reference, "the state after the event", what strict mode keeps quiet) in one
place so the rules read like the reference.
"""

from __future__ import annotations

from typing import Protocol

from virtbridge.engine.actions import Action
from virtbridge.engine.events import DomainRef, Event
from virtbridge.engine.lifecycle import EventType
from virtbridge.engine.payloads import EventID, Lifecycle, Payload
from virtbridge.engine.policy import Policy
from virtbridge.engine.signals import Signal
from virtbridge.engine.states import (
    ACTIVE_STATES,
    DomainState,
    PausedReason,
    RunningReason,
    ShutoffReason,
)


class DomainRecord:
    """Everything the engine remembers about one domain (libvirt's ``virDomainObj`` plus the
    qemu driver's private flags that decide event order)."""

    __slots__ = (
        "being_destroyed",
        "deadline",
        "fake_reboot",
        "id",
        "lingering",
        "managed_save",
        "name",
        "paused_reason",
        "paused_shutdown",
        "persistent",
        "policy",
        "reason",
        "ref",
        "request_prior",
        "requested",
        "running_reason",
        "saving",
        "state",
        "uuid",
    )

    def __init__(self, name: str, uuid: str | None, policy: Policy) -> None:
        self.name = name
        self.uuid = uuid
        self.id = -1
        self.state = DomainState.SHUTOFF
        self.reason: int = ShutoffReason.UNKNOWN
        self.persistent = False
        self.policy = policy
        # Reasons libvirt saves before it sends stop/cont; the STOP/RESUME handlers use them.
        self.paused_reason: int = PausedReason.UNKNOWN
        self.running_reason: int = RunningReason.UNKNOWN
        self.fake_reboot = False
        self.paused_shutdown = False
        self.being_destroyed = False
        self.saving = False
        self.managed_save = False
        # Stopped while its process may still be exiting (its last QMP events are expected).
        self.lingering = False
        # A shutdown request in flight (extension): whether, until when, and the reason before.
        self.requested = False
        self.deadline: int | None = None
        self.request_prior: int = RunningReason.UNKNOWN
        self.ref = DomainRef(name, uuid, -1)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def refresh_ref(self) -> None:
        self.ref = DomainRef(self.name, self.uuid, self.id)

    def clear_process_flags(self) -> None:
        self.paused_reason = PausedReason.UNKNOWN
        self.running_reason = RunningReason.UNKNOWN
        self.fake_reboot = False
        self.paused_shutdown = False
        self.being_destroyed = False
        self.saving = False
        self.end_request()

    def end_request(self) -> None:
        """A pending shutdown request is over (the guest shut down, the request timed out, or
        a destroy overtook it): no timeout to wait for any more."""
        self.requested = False
        self.deadline = None


class RecordStore(Protocol):
    """The engine as a transaction sees it: the records it keeps, the IDs it hands out, the
    policies it knows, and the settings the rules read.  :class:`~virtbridge.Engine` is the
    implementation; a protocol, so that this module does not import the engine."""

    @property
    def strict_libvirt(self) -> bool: ...

    @property
    def all_monitor_events(self) -> bool: ...

    @property
    def agent_ports(self) -> frozenset[str]: ...

    def create_record(self, name: str, uuid: str | None) -> DomainRecord: ...

    def allocate_id(self) -> int: ...

    def policy_for(self, name: str) -> Policy: ...


class Tx:
    """One signal being applied to one domain.

    Strict mode (``strict_libvirt``) is decided here: :meth:`emit` drops every event that is
    a virtbridge extension (:attr:`Event.is_extension`), so a rule emits the same events
    either way.  Besides :meth:`emit`, :attr:`strict` is read only where an extension changes
    more than what is emitted: the shutdown request's running reason, and whether a POWERDOWN
    someone else sent is a request (``requests.py``, its only other reader).
    """

    __slots__ = ("actions", "dom", "engine", "error", "events", "signal")

    def __init__(self, engine: RecordStore, signal: Signal, dom: DomainRecord | None) -> None:
        self.engine = engine
        self.signal = signal
        self.dom = dom
        self.events: list[Event] = []
        self.actions: list[Action] = []
        self.error: str | None = None

    # -- the domain -------------------------------------------------------------------------

    def domain(self) -> DomainRecord:
        """The signal's domain record, created (inactive, transient) if it does not exist."""
        dom = self.dom
        if dom is None:
            dom = self.engine.create_record(self.signal.domain, self.signal.uuid)
            self.dom = dom
        return dom

    @property
    def policy(self) -> Policy:
        dom = self.dom
        return dom.policy if dom is not None else self.engine.policy_for(self.signal.domain)

    @property
    def name(self) -> str:
        return self.signal.domain

    @property
    def strict(self) -> bool:
        """libvirt's behaviour only: no extension event, no extension state."""
        return self.engine.strict_libvirt

    def set_state(self, state: DomainState, reason: int) -> None:
        dom = self.domain()
        dom.state = state
        dom.reason = reason

    def activate(self) -> None:
        """A process now exists for the domain: give it the next domain ID."""
        dom = self.domain()
        dom.clear_process_flags()
        dom.lingering = False
        dom.id = self.engine.allocate_id()
        dom.refresh_ref()

    def deactivate(self, *, process_alive: bool = False) -> None:
        """The domain stopped (libvirt's qemuProcessStop): ID -1, per-process flags cleared.

        ``process_alive``: the process is still being killed, so its trailing events (QEMU's
        SHUTDOWN after SIGTERM, the EOF) are expected and must not look like a new domain.
        """
        dom = self.domain()
        dom.clear_process_flags()
        dom.lingering = process_alive
        dom.id = -1
        dom.refresh_ref()

    # -- output -------------------------------------------------------------------------------

    def emit(self, kind: EventID, payload: Payload, ref: DomainRef | None = None) -> None:
        """Queue an event carrying the domain's state now; under strict mode an extension
        event is dropped here (and only here)."""
        dom = self.domain()
        signal = self.signal
        event = Event(
            kind, ref or dom.ref, payload, dom.state, dom.reason, signal.timestamp, signal
        )
        if self.strict and event.is_extension:
            return
        self.events.append(event)

    def lifecycle(self, event: EventType, detail: int) -> None:
        self.emit(EventID.LIFECYCLE, Lifecycle(event, detail))

    def act(self, action: Action) -> None:
        self.actions.append(action)

    def reject(self, message: str) -> None:
        """Refuse an intent (control-plane misuse), the way libvirt's API would fail."""
        self.error = message
