"""The domain reference and the normalized event the engine emits."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import msgspec

from virtbridge.engine.lifecycle import DETAILS, EXTENSION_DETAILS, EventType
from virtbridge.engine.payloads import EventID, Lifecycle, Payload
from virtbridge.engine.signals import LibvirtEvent, Signal
from virtbridge.engine.states import EXTENSION_BASE, REASONS, DomainState
from virtbridge.engine.time import Timestamp

if TYPE_CHECKING:
    from enum import IntEnum


class DomainRef(msgspec.Struct, frozen=True, gc=False):
    """Which domain an event is about.

    ``id`` is libvirt's numeric domain ID: -1 while the domain is inactive, and a new,
    larger number every time it starts.
    """

    name: str
    uuid: str | None = None
    id: int = -1


class Event(msgspec.Struct, frozen=True, gc=False):
    """A normalized domain event.

    ``kind`` is the libvirt event ID; ``payload`` its arguments (for LIFECYCLE a
    :class:`~virtbridge.Lifecycle` with the event type and detail); ``state`` and ``reason``
    are the domain's state right after the event; ``timestamp`` is the hypervisor's time of
    the signal that caused it and ``cause`` that signal itself.
    """

    kind: EventID
    domain: DomainRef
    payload: Payload
    state: DomainState
    reason: int
    timestamp: Timestamp | None
    cause: Signal
    from_cloudevent: ClassVar[Callable[[bytes | str], Event]]
    """``Event.from_cloudevent(raw)``: the typed event back from a CloudEvent on the wire (a
    ValueError for anything else).  Provided by the public API, which knows the wire format
    (the engine does not); ``virtbridge.decode_cloudevent`` gives the envelope too."""

    @property
    def lifecycle(self) -> Lifecycle | None:
        """The (event, detail) pair when this is a LIFECYCLE event."""
        payload = self.payload
        return payload if isinstance(payload, Lifecycle) else None

    @property
    def reason_enum(self) -> IntEnum:
        """``reason`` as the member of the state's reason enum."""
        return REASONS[self.state](self.reason)

    @property
    def is_extension(self) -> bool:
        """True when the event uses a virtbridge extension (detail or reason), or is one that
        libvirt never sends (a libvirt source's resynchronisation after a reconnect)."""
        if self.reason >= EXTENSION_BASE:
            return True
        if type(self.cause) is LibvirtEvent and self.cause.resync:
            return True
        payload = self.payload
        return (
            isinstance(payload, Lifecycle)
            and (payload.event, payload.detail) in EXTENSION_DETAILS  # IntEnums hash as ints
        )

    def describe(self) -> str:
        """A short human form: ``vm1(3) LIFECYCLE SHUTDOWN/GUEST -> SHUTDOWN/UNKNOWN``."""
        head = f"{self.domain.name}({self.domain.id}) {self.kind.name}"
        payload = self.payload
        if isinstance(payload, Lifecycle):
            detail = DETAILS[EventType(payload.event)](payload.detail)
            head += f" {EventType(payload.event).name}/{detail.name}"
        return f"{head} -> {self.state.name}/{self.reason_enum.name}"
