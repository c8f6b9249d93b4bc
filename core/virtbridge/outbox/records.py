"""What the outbox stores: an event with its bridge-wide sequence number and stable id."""

from __future__ import annotations

from typing import Any

import msgspec

from virtbridge.engine.events import Event


class Record(msgspec.Struct, frozen=True, gc=False):
    """One event in the outbox.

    ``seq`` is the bridge-wide sequence number (1, 2, 3, ... never reused); ``id`` is the
    event's stable identity, the same on every redelivery (CloudEvents ``id``, JetStream
    ``Nats-Msg-Id``); ``attributes`` are extension attributes added by enrichment plugins.
    """

    seq: int
    id: str
    event: Event
    attributes: dict[str, Any] | None = None


def record_id(bridge_id: str, seq: int) -> str:
    return f"{bridge_id}-{seq}"
