"""How the durable outbox stores records: one msgpack array per event, and a chunk (the
events of one transaction, contiguous sequence numbers) as an array of those, encoded in
one call and, unless it is small, compressed (zlib, its fastest level).

Compression costs about half a microsecond per event and makes a chunk about a tenth of its
size (events of one transaction repeat names, ids and field layouts): what SQLite writes into
its log, copies into the database at a checkpoint and frees again after compaction shrinks
by as much, and that writing was the larger cost.  Not so for a small chunk (a live host's
transaction holds an event or two): zlib's fixed cost (about 10 µs, most of a single event's
encoding) would buy a few dozen bytes of a page SQLite writes whole anyway, so a body under
:data:`COMPRESS_FROM` bytes is stored as it is.  The first byte tells which: a zlib stream
starts with ``0x78``, which begins no msgpack array (nor JSON object).

Structs and enums are encoded by msgspec itself (no Python per field); the payload, the
timestamp and the cause are read back raw and decoded into their own types.  A libvirt event's
cause (whose payload is a union of structs) is stored in trace-file form instead.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import msgspec

from virtbridge.engine.events import DomainRef, Event
from virtbridge.engine.lifecycle import DETAILS, EventType
from virtbridge.engine.payloads import PAYLOAD_TYPES, EventID, Lifecycle, Payload
from virtbridge.engine.signals import SIGNAL_TYPES, LibvirtEvent
from virtbridge.engine.states import DomainState
from virtbridge.engine.time import Timestamp
from virtbridge.outbox.records import Record
from virtbridge.wire.trace import parse_object, signal_to_object

_SIGNAL_TAGS = {kind: index for index, kind in enumerate(SIGNAL_TYPES) if kind is not LibvirtEvent}
COMPRESSION = 1
"""zlib's level for chunks: the fastest, already about 10:1 on events."""
COMPRESS_FROM = 1024
"""Bodies shorter than this many bytes are stored uncompressed (see the module's text)."""
TRACE_FORM = -1
"""The tag of a cause stored in trace-file form (a libvirt event: its payload is a union)."""

# One stored event: the parts of a Record, with the payload, timestamp and cause left raw so
# they decode into their own types.
_StoredRecord = tuple[
    str,
    int,
    str,
    str | None,
    int,
    int,
    int,
    msgspec.Raw,  # the timestamp, or nil
    msgspec.Raw,
    int,
    msgspec.Raw,
    dict[str, Any] | None,
]


def _payload(kind: EventID, raw: msgspec.Raw) -> Payload:
    payload: Payload = msgspec.msgpack.decode(raw, type=PAYLOAD_TYPES[kind])
    if isinstance(payload, Lifecycle):  # the detail back as its enum member
        life = EventType(payload.event)
        payload = Lifecycle(life, DETAILS[life](payload.detail))
    return payload


class RecordCodec:
    """Encodes records for the database and decodes them back, exactly."""

    def __init__(self) -> None:
        self.encoder = msgspec.msgpack.Encoder()
        self.chunk_decoder = msgspec.msgpack.Decoder(list[_StoredRecord])

    def encode(self, record: Record) -> bytes:
        """One record (a dead letter)."""
        return self.encoder.encode(_stored(record))

    def encode_chunk(self, records: Sequence[Record]) -> bytes:
        """Records with contiguous sequence numbers, as one chunk."""
        return compress(self.encoder.encode([_stored(record) for record in records]))

    def decode_chunk(self, first: int, body: bytes) -> list[Record]:
        return [
            _record(seq, stored)
            for seq, stored in enumerate(self.chunk_decoder.decode(decompress(body)), start=first)
        ]


def compress(body: bytes) -> bytes:
    """``body`` as stored: compressed if it is long enough to be worth it."""
    return zlib.compress(body, COMPRESSION) if len(body) >= COMPRESS_FROM else body


def decompress(stored: bytes) -> bytes:
    """What :func:`compress` was given, whether it compressed it or not."""
    return zlib.decompress(stored) if stored[:1] == b"\x78" else stored


def chunk_of_encoded(bodies: Sequence[bytes]) -> bytes:
    """A chunk made of records encoded one by one (:meth:`RecordCodec.encode`)."""
    return compress(msgspec.msgpack.encode([msgspec.Raw(body) for body in bodies]))


def _stored(record: Record) -> tuple[Any, ...]:
    # Structs and enums are encoded by msgspec itself (no Python per field): the cause goes
    # with its type's tag so it decodes back to the same signal type.
    event = record.event
    domain = event.domain
    cause = event.cause
    return (
        record.id,
        event.kind,
        domain.name,
        domain.uuid,
        domain.id,
        event.state,
        event.reason,
        event.timestamp,
        event.payload,
        _SIGNAL_TAGS.get(type(cause), TRACE_FORM),
        cause if type(cause) in _SIGNAL_TAGS else signal_to_object(cause),
        record.attributes,
    )


def _record(seq: int, stored: Any) -> Record:
    (event_id, kind, name, uuid_, id_, state, reason, stamp, payload, tag, cause, attributes) = (
        stored
    )
    kind = EventID(kind)
    if tag == TRACE_FORM:
        signal = parse_object(msgspec.msgpack.decode(cause))
    else:
        signal = msgspec.msgpack.decode(cause, type=SIGNAL_TYPES[tag])
    event = Event(
        kind,
        DomainRef(name, uuid_, id_),
        _payload(kind, payload),
        DomainState(state),
        reason,
        msgspec.msgpack.decode(stamp, type=Timestamp | None),
        signal,
    )
    return Record(seq, event_id, event, attributes)
