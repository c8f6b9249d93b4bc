"""``virtbridge tail mqtt://HOST:PORT[/PREFIX]``: retained states first, then live events."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import msgspec

import virtbridge

from ._connection import Connection
from ._endpoint import Endpoint
from ._topics import STATE

log = logging.getLogger("virtbridge.tail.mqtt")


async def open_feed(options: virtbridge.TailOptions) -> AsyncIterator[virtbridge.TailItem]:
    if options.since != "new":
        raise ValueError(
            "MQTT keeps no history (only the retained states): --since and --all need NATS "
            "JetStream"
        )
    endpoint = Endpoint.parse(options.url)
    prefix = options.prefix or (endpoint.path if not endpoint.websocket else "") or "virtbridge"
    host = virtbridge.escape_token(options.host) if options.host is not None else "+"
    domain = virtbridge.escape_token(options.domain) if options.domain is not None else "+"
    conn = Connection(
        endpoint,
        client_id=f"virtbridge-tail-{os.getpid()}-{os.urandom(3).hex()}",
        protocol="5",
        persistent=False,
        keepalive=30,
        logger=log,
        tls=virtbridge.tls_context(
            options.tls_ca, options.tls_cert, options.tls_key, insecure=options.tls_insecure
        )
        if endpoint.tls
        else None,
        username=options.username,
        password=options.password,
    )
    queue: asyncio.Queue[Any] = asyncio.Queue()
    conn.on_message = queue.put_nowait
    topic = f"{prefix}/{host}/domain/{domain}/+"
    conn.on_connected = lambda _present: conn.subscribe([(topic, 1)])
    await conn.connect()
    conn.start()
    try:
        while True:
            message = await queue.get()
            item = _item(message, options.states)
            if item is not None:
                yield item
    finally:
        await conn.close()


def _item(message: Any, states: bool) -> virtbridge.TailItem | None:
    raw: bytes = message.payload
    if message.topic.rsplit("/", 1)[-1] == STATE:
        # Retained copies arrive once, at subscription: the current states.  Live state
        # updates repeat what the events say.
        if not (states and message.retain and raw):
            return None
        try:
            return virtbridge.TailItem(virtbridge.decode_status(raw), raw)
        except ValueError as exc:
            log.warning("ignoring %s: %s", message.topic, exc)
            return None
    try:
        envelope = _binary_envelope(message, raw)
        value = virtbridge.decode_cloudevent(envelope if envelope is not None else raw)
    except ValueError as exc:
        log.warning("ignoring a message on %s: %s", message.topic, exc)
        return None
    if envelope is not None:
        raw = msgspec.json.encode(envelope)  # printed as the structured event it stands for
    return virtbridge.TailItem(value, raw)


def _binary_envelope(message: Any, raw: bytes) -> dict[str, Any] | None:
    """A binary-mode CloudEvent (MQTT 5): attributes in user properties, data as payload."""
    properties = getattr(message, "properties", None)
    pairs = getattr(properties, "UserProperty", None) if properties is not None else None
    if not pairs:
        return None
    attributes = dict(pairs)
    if "specversion" not in attributes:
        return None
    envelope: dict[str, Any] = {**attributes, "data": msgspec.json.decode(raw)}
    return envelope
