"""The event on the wire: CloudEvents 1.0, structured JSON.

``data`` is flat and jq-friendly: names *and* libvirt's numeric codes for every enum::

    {"domain": "vm1", "uuid": null, "id": 3,
     "kind": "lifecycle", "event_id": 0,
     "event": "SHUTDOWN", "event_code": 6, "detail": "GUEST", "detail_code": 1,
     "state": "SHUTDOWN", "state_code": 4, "reason": "UNKNOWN", "reason_code": 0,
     "payload": {}, "extension": false,
     "cause": {"domain": "vm1", "event": "SHUTDOWN", "data": {"guest": true}, ...}}

Non-lifecycle events have no ``event``/``detail`` keys; their ``payload`` holds the kind's
fields, each enum field as ``name`` plus ``name_code``.  ``cause`` is the signal that caused
the event, in trace-file form, so a consumer can always see the raw hypervisor input.
:func:`event_from_data` is the exact inverse (used by the durable outbox).
"""

from __future__ import annotations

import datetime as _dt
import functools
from typing import Any

import msgspec

from virtbridge.engine.events import DomainRef, Event
from virtbridge.engine.lifecycle import DETAILS
from virtbridge.engine.payloads import EventID, Lifecycle
from virtbridge.engine.signals import Signal
from virtbridge.engine.states import REASONS, DomainState
from virtbridge.engine.time import Timestamp
from virtbridge.wire.payloads import payload_from_object, payload_to_object
from virtbridge.wire.trace import parse_object, signal_to_object

SPECVERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "io.virtbridge.domain."


def event_type(event: Event) -> str:
    """The CloudEvents ``type``: ``io.virtbridge.domain.<kind>``."""
    return TYPE_PREFIX + event.kind.kind


_REASON_NAMES = {
    (state, int(reason)): (state.name, reason.name)
    for state, reasons in REASONS.items()
    for reason in reasons
}
_DETAIL_NAMES = {
    (kind, int(detail)): (kind.name, detail.name)
    for kind, details in DETAILS.items()
    for detail in details
}


def event_to_data(event: Event, cause: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CloudEvents ``data`` object of an event (``cause``: the cause already converted)."""
    state, reason = event.state, event.reason
    state_name, reason_name = _REASON_NAMES[(state, reason)]
    domain = event.domain
    kind = event.kind
    data: dict[str, Any] = {
        "domain": domain.name,
        "uuid": domain.uuid,
        "id": domain.id,
        "kind": kind.kind,
        "event_id": int(kind),
    }
    payload = event.payload
    if isinstance(payload, Lifecycle):
        life, detail = payload.event, payload.detail
        event_name, detail_name = _DETAIL_NAMES[(life, detail)]
        data["event"] = event_name
        data["event_code"] = int(life)
        data["detail"] = detail_name
        data["detail_code"] = int(detail)
        data["payload"] = {}
    else:
        data["payload"] = payload_to_object(payload, codes=True)
    data["state"] = state_name
    data["state_code"] = int(state)
    data["reason"] = reason_name
    data["reason_code"] = int(reason)
    data["extension"] = event.is_extension
    data["cause"] = signal_to_object(event.cause) if cause is None else cause
    return data


def event_from_data(data: dict[str, Any], timestamp: Timestamp | None = None) -> Event:
    """Rebuild an :class:`Event` from :func:`event_to_data` output (raises ValueError)."""
    try:
        kind = EventID(data["event_id"])
        state = DomainState(data["state_code"])
        reason = int(REASONS[state](data["reason_code"]))
        payload = payload_from_object(kind, data if kind is EventID.LIFECYCLE else data["payload"])
        cause = parse_object(data["cause"])
    except (KeyError, TypeError, ValueError, msgspec.ValidationError) as exc:
        raise ValueError(f"not a virtbridge event: {exc}") from exc
    ref = DomainRef(data["domain"], data.get("uuid"), int(data["id"]))
    return Event(kind, ref, payload, state, reason, timestamp or cause.timestamp, cause)


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    return Timestamp(seconds).isoformat()[:19]


def format_sequence(sequence: int) -> str:
    """20 digits: every 64-bit sequence number, in an order strings and numbers agree on."""
    return f"{sequence:020d}"


def cloudevent(
    event: Event,
    *,
    event_id: str,
    sequence: int,
    source: str,
    attributes: dict[str, Any] | None = None,
    cause: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A structured-mode CloudEvent (a dict ready for JSON encoding).

    ``sequence`` goes into the ``sequence`` extension attribute as a zero-padded decimal
    string, because the CloudEvents sequence extension orders values lexicographically;
    ``attributes`` are extension attributes added by enrichment plugins.
    """
    envelope: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": event_id,
        "source": source,
        "type": event_type(event),
        "subject": event.domain.name,
        "datacontenttype": "application/json",
        "sequence": format_sequence(sequence),
    }
    stamp = event.timestamp
    if stamp is not None:
        envelope["time"] = f"{_second(stamp.seconds)}.{stamp.microseconds:06d}Z"
    if attributes:
        for key, value in attributes.items():
            envelope.setdefault(key, value)
    envelope["data"] = event_to_data(event, cause)
    return envelope


class CloudEventBuilder:
    """Builds CloudEvents for one sink, converting each signal's cause only once (the events
    of one signal share it, and they usually come one after another)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._signal: Signal | None = None
        self._cause: dict[str, Any] = {}

    def build(
        self, event: Event, event_id: str, sequence: int, attributes: dict[str, Any] | None
    ) -> dict[str, Any]:
        signal = event.cause
        if signal is not self._signal:
            self._signal = signal
            self._cause = signal_to_object(signal)
        return cloudevent(
            event,
            event_id=event_id,
            sequence=sequence,
            source=self.source,
            attributes=attributes,
            cause=self._cause,
        )


def parse_time(value: str) -> Timestamp:
    """The inverse of the CloudEvents ``time`` this module writes (RFC 3339, UTC)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = _dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    delta = moment - epoch
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Timestamp(micros // 1_000_000, micros % 1_000_000)


_CORE_ATTRIBUTES = frozenset(
    {
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "dataschema",
        "data",
        "data_base64",
        "sequence",
    }
)


class WireEvent(msgspec.Struct, frozen=True):
    """A CloudEvent read back from the wire: the typed :class:`Event`, and the envelope's
    identity (``id``, ``source``, ``sequence``) and extension attributes."""

    event: Event
    id: str
    source: str
    sequence: int
    attributes: dict[str, Any] | None = None

    @property
    def host(self) -> str:
        """The bridge's host, from ``source`` (``virtbridge://<host>``)."""
        return self.source.removeprefix("virtbridge://")


_envelope = msgspec.json.Decoder(dict[str, Any])


def decode_cloudevent(raw: bytes | str | dict[str, Any]) -> WireEvent:
    """Parse one structured-mode CloudEvent as virtbridge publishes it (raises ValueError)."""
    try:
        envelope = raw if isinstance(raw, dict) else _envelope.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a CloudEvent: {exc}") from None
    if envelope.get("specversion") != SPECVERSION:
        raise ValueError(f"not a CloudEvent 1.0: specversion is {envelope.get('specversion')!r}")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise ValueError("not a virtbridge event: no data object")
    when = envelope.get("time")
    try:
        timestamp = parse_time(when) if isinstance(when, str) else None
        sequence = int(envelope.get("sequence") or 0)
    except ValueError as exc:
        raise ValueError(f"not a virtbridge event: {exc}") from None
    event = event_from_data(data, timestamp)
    extensions = {k: v for k, v in envelope.items() if k not in _CORE_ATTRIBUTES}
    return WireEvent(
        event,
        str(envelope.get("id", "")),
        str(envelope.get("source", "")),
        sequence,
        extensions or None,
    )


class DomainStatus(msgspec.Struct, kw_only=True, omit_defaults=False):
    """A domain's current state as buses keep it (MQTT's retained ``state`` topic, the NATS
    state bucket): the state and reason after the newest event, and that event's identity."""

    host: str
    domain: str
    uuid: str | None
    id: int
    state: str
    state_code: int
    reason: str
    reason_code: int
    time: str | None
    sequence: str
    event: str
    """The CloudEvents id of the event that set this state."""

    @classmethod
    def of(cls, event: Event, *, host: str, event_id: str, sequence: int) -> DomainStatus:
        state, reason = _REASON_NAMES[(event.state, event.reason)]
        stamp = event.timestamp
        return cls(
            host=host,
            domain=event.domain.name,
            uuid=event.domain.uuid,
            id=event.domain.id,
            state=state,
            state_code=int(event.state),
            reason=reason,
            reason_code=int(event.reason),
            time=None if stamp is None else f"{_second(stamp.seconds)}.{stamp.microseconds:06d}Z",
            sequence=format_sequence(sequence),
            event=event_id,
        )

    def same_state(self, other: DomainStatus | None) -> bool:
        """Whether ``other`` describes the same domain incarnation in the same state."""
        return (
            other is not None
            and other.state_code == self.state_code
            and other.reason_code == self.reason_code
            and other.id == self.id
            and other.uuid == self.uuid
        )


_status_decoder = msgspec.json.Decoder(DomainStatus)


def decode_status(raw: bytes | str) -> DomainStatus:
    """Parse a published :class:`DomainStatus` (raises ValueError)."""
    try:
        return _status_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ValueError(f"not a virtbridge domain state: {exc}") from None
