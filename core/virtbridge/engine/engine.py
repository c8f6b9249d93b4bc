"""The lifecycle engine: signals in, events and actions out.

No I/O, no clock, no logging.  ``Engine.feed`` never raises on hypervisor input: unknown
events, garbage data and impossible sequences become data (a generic monitor event, a
resync request, or nothing).  It raises only on programming errors (feeding something that
is not a signal).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from virtbridge.engine.actions import Action, ScheduleTimer
from virtbridge.engine.control import intent
from virtbridge.engine.domain import DomainRecord, Tx
from virtbridge.engine.events import Event
from virtbridge.engine.libvirt import libvirt_event
from virtbridge.engine.policy import DEFAULT_POLICY, Policy
from virtbridge.engine.qmp import monitor_error, process_gone, qmp_event
from virtbridge.engine.reconnect import observed_status, process_lost
from virtbridge.engine.requests import timer
from virtbridge.engine.signals import (
    Intent,
    LibvirtEvent,
    MonitorEof,
    MonitorError,
    ObservedStatus,
    ProcessExit,
    ProcessLost,
    QmpEvent,
    Signal,
    Timer,
)
from virtbridge.engine.states import DomainState
from virtbridge.engine.time import Timestamp
from virtbridge.errors import InvalidPolicy, MalformedSnapshot, NotASignal

DEFAULT_AGENT_PORTS = frozenset({"channel0", "qga0"})
"""virtio-serial port ids taken to be the guest agent's channel (libvirt's default alias)."""


class Outcome(msgspec.Struct, frozen=True, gc=False):
    """What one signal caused: events to publish, actions for the process owner, and the
    reason an intent was refused (``error``; None when it was accepted)."""

    events: tuple[Event, ...] = ()
    actions: tuple[Action, ...] = ()
    error: str | None = None


NOTHING = Outcome()


class DomainView(msgspec.Struct, frozen=True):
    """A read-only snapshot of one domain as the engine sees it."""

    name: str
    uuid: str | None
    id: int
    state: DomainState
    reason: int
    persistent: bool
    policy: Policy
    shutdown_requested: bool


_DISPATCH: dict[type[Signal], Callable[[Tx], None]] = {
    QmpEvent: qmp_event,
    MonitorEof: process_gone,
    ProcessExit: process_gone,
    MonitorError: monitor_error,
    Intent: intent,
    ObservedStatus: observed_status,
    ProcessLost: process_lost,
    Timer: timer,
    LibvirtEvent: libvirt_event,
}


class Engine:
    """libvirt's qemu-driver lifecycle semantics for many domains.

    ``strict_libvirt`` turns every virtbridge extension off (no SHUTDOWN/REQUESTED or
    SHUTDOWN/IGNORED events, no extension reasons; see ``Tx``).  ``policy`` is the default
    per-domain policy; :meth:`set_policy` overrides it for one domain.  ``monitor_events`` is
    ``"unhandled"`` (a QEMU_MONITOR event for QMP events libvirt has no handler for) or
    ``"all"`` (one for every QMP event, as libvirt's monitor-event API delivers them).
    """

    def __init__(
        self,
        *,
        strict_libvirt: bool = False,
        policy: Policy = DEFAULT_POLICY,
        monitor_events: str = "unhandled",
        agent_ports: Iterable[str] = DEFAULT_AGENT_PORTS,
    ) -> None:
        problems = policy.problems()
        if problems:
            raise InvalidPolicy("invalid default policy: " + "; ".join(problems))
        if monitor_events not in ("unhandled", "all"):
            raise InvalidPolicy("monitor_events must be 'unhandled' or 'all'")
        self.strict_libvirt = strict_libvirt
        self.default_policy = policy
        self.all_monitor_events = monitor_events == "all"
        self.agent_ports = frozenset(agent_ports)
        self._domains: dict[str, DomainRecord] = {}
        self._policies: dict[str, Policy] = {}
        self._next_id = 1

    # -- feeding ----------------------------------------------------------------------------

    def feed(self, signal: Signal) -> Outcome:
        """Apply one signal; return the events it causes and the actions it needs."""
        try:
            handler = _DISPATCH[type(signal)]
        except KeyError:
            raise NotASignal(f"not a signal: {signal!r}") from None
        name = signal.domain
        dom = self._domains.get(name)
        if dom is not None and signal.uuid is not None and dom.uuid is None:
            dom.uuid = signal.uuid
            dom.refresh_ref()
        tx = Tx(self, signal, dom)
        handler(tx)
        dom = tx.dom
        if dom is not None and not dom.persistent and not dom.active and not dom.lingering:
            self._domains.pop(name, None)  # a transient domain disappears when it stops
        if not tx.events and not tx.actions and tx.error is None:
            return NOTHING
        return Outcome(tuple(tx.events), tuple(tx.actions), tx.error)

    def feed_all(self, signals: Iterable[Signal]) -> Iterator[Event]:
        """Feed signals in order and yield every event (actions are dropped: for replays)."""
        for signal in signals:
            yield from self.feed(signal).events

    # -- records (used by transitions) ---------------------------------------------------

    def create_record(self, name: str, uuid: str | None) -> DomainRecord:
        dom = DomainRecord(name, uuid, self.policy_for(name))
        self._domains[name] = dom
        return dom

    def allocate_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    # -- policies ----------------------------------------------------------------------------

    def policy_for(self, name: str) -> Policy:
        return self._policies.get(name, self.default_policy)

    def set_policy(self, name: str, policy: Policy) -> None:
        """Set one domain's policy (from configuration).  Raises ValueError if it is invalid."""
        problems = policy.problems()
        if problems:
            raise InvalidPolicy(f"invalid policy for domain {name!r}: " + "; ".join(problems))
        self._policies[name] = policy
        dom = self._domains.get(name)
        if dom is not None:
            dom.policy = policy

    # -- inspection ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._domains)

    def __bool__(self) -> bool:
        return True  # an engine with no domains yet is still an engine

    def __contains__(self, name: object) -> bool:
        return name in self._domains

    def names(self) -> list[str]:
        return list(self._domains)

    def view(self, name: str) -> DomainView | None:
        dom = self._domains.get(name)
        if dom is None:
            return None
        return DomainView(
            dom.name,
            dom.uuid,
            dom.id,
            dom.state,
            dom.reason,
            dom.persistent,
            dom.policy,
            dom.requested,
        )

    # -- persistence ---------------------------------------------------------------------------

    @property
    def next_id(self) -> int:
        return self._next_id

    def export_domain(self, name: str) -> tuple[Any, ...] | None:
        """One domain's record, compactly: its saved slots in :data:`SAVED_SLOTS` order
        (msgspec encodes it as a JSON array; None: the engine forgot the domain).  Called
        for every domain a stored transaction touched: one C call, not a getattr per slot."""
        dom = self._domains.get(name)
        if dom is None:
            return None
        saved: tuple[Any, ...] = _saved_slots(dom)
        return saved

    def pending_timers(self) -> list[ScheduleTimer]:
        """The timers the domains wait for (restored shutdown requests' deadlines): the
        runtime arms them after a restore, or IGNORED and its escalation would never come."""
        timers = []
        for dom in self._domains.values():
            if dom.requested and dom.active and dom.deadline is not None:
                at = Timestamp(dom.deadline // 1_000_000, dom.deadline % 1_000_000)
                timers.append(ScheduleTimer(domain=dom.name, delay=0.0, at=at))
        return timers

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue after a restart, as JSON-compatible data."""
        return {
            "next_id": self._next_id,
            "domains": [
                {slot: _plain(getattr(dom, slot)) for slot in SAVED_SLOTS}
                for dom in self._domains.values()
            ],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` (replacing current records).  Raises ValueError if it is
        malformed."""
        try:
            self._next_id = max(int(snapshot["next_id"]), self._next_id)
            records = {}
            for raw in snapshot["domains"]:
                # a list is the compact form of export_domain() (a tuple, as JSON)
                item = dict(zip(SAVED_SLOTS, raw, strict=False)) if isinstance(raw, list) else raw
                dom = DomainRecord(
                    str(item["name"]), item.get("uuid"), self.policy_for(item["name"])
                )
                for slot in SAVED_SLOTS:
                    if slot in item and slot not in ("name", "uuid"):
                        setattr(dom, slot, _load(slot, item[slot]))
                dom.refresh_ref()
                records[dom.name] = dom
        except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
            raise MalformedSnapshot(f"malformed engine snapshot: {exc}") from exc
        self._domains = records


SAVED_SLOTS = tuple(slot for slot in DomainRecord.__slots__ if slot != "ref")
_saved_slots = operator.attrgetter(*SAVED_SLOTS)


def _plain(value: Any) -> Any:
    if isinstance(value, Policy):
        return msgspec.to_builtins(value)
    if isinstance(value, DomainState):
        return int(value)
    return value


def _load(slot: str, value: Any) -> Any:
    if slot == "policy":
        return msgspec.convert(value, Policy)
    if slot == "state":
        return DomainState(value)
    return value
