"""``virtbridge tail nats://HOST:PORT``: the states in the bucket, then events (an ordered
consumer on the stream with ``--stream``, a plain subscription without)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import msgspec
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import BucketNotFoundError, NoKeysError, NotFoundError

import virtbridge

from ._connection import Connection
from ._names import key_token, subject_token

log = logging.getLogger("virtbridge.tail.nats")
BUCKET = "virtbridge_state"


def _since(since: str) -> tuple[DeliverPolicy, dt.datetime | None]:
    if since == "new":
        return DeliverPolicy.NEW, None
    if since == "all":
        return DeliverPolicy.ALL, None
    try:
        moment = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since: {since!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return DeliverPolicy.BY_START_TIME, moment


async def open_feed(options: virtbridge.TailOptions) -> AsyncIterator[virtbridge.TailItem]:
    if options.since != "new" and not options.stream:
        raise ValueError("--since and --all read a stream's history: give --stream")
    parts = urlsplit(options.url)
    server = f"{parts.scheme}://{parts.netloc}"
    prefix = options.prefix or parts.path.strip("/") or "virtbridge"
    policy, start = _since(options.since)
    tls = None
    if parts.scheme in ("tls", "wss") or options.tls_ca or options.tls_cert:
        tls = virtbridge.tls_context(
            options.tls_ca, options.tls_cert, options.tls_key, insecure=options.tls_insecure
        )
    conn = Connection(
        [server],
        name="virtbridge-tail",
        logger=log,
        tls=tls,
        user=options.username,
        password=options.password,
    )
    nc = await conn.connect()
    try:
        host = subject_token(options.host) if options.host is not None else "*"
        domain = subject_token(options.domain) if options.domain is not None else "*"
        subject = f"{prefix}.{host}.domain.{domain}.*"
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def received(msg: Any) -> None:
            queue.put_nowait(msg)

        # Subscribe before reading the states, so nothing falls between the two.
        js = nc.jetstream()
        if options.stream:
            config = ConsumerConfig(deliver_policy=policy, opt_start_time=start)
            await js.subscribe(
                subject, stream=options.stream, ordered_consumer=True, config=config, cb=received
            )
        else:
            await nc.subscribe(subject, cb=received)
        if options.states:
            async for item in _states(js, options):
                yield item
        while True:
            event = _event(await queue.get())
            if event is not None:
                yield event
    finally:
        await conn.close()


async def _states(js: Any, options: virtbridge.TailOptions) -> AsyncIterator[virtbridge.TailItem]:
    bucket = options.bucket or BUCKET
    try:
        kv = await js.key_value(bucket)
    except (BucketNotFoundError, NotFoundError):
        log.warning("no state bucket %r on this server: no current states", bucket)
        return
    host = key_token(options.host) if options.host is not None else None
    domain = key_token(options.domain) if options.domain is not None else None
    try:
        keys = await kv.keys()  # filtered here: servers before 2.10 ignore filters
    except NoKeysError:
        return
    for key in sorted(keys):
        key_host, _, key_domain = key.partition(".")
        if (host is not None and key_host != host) or (domain is not None and key_domain != domain):
            continue
        entry = await kv.get(key)
        if not entry.value:
            continue
        try:
            yield virtbridge.TailItem(virtbridge.decode_status(entry.value), entry.value)
        except ValueError as exc:
            log.warning("ignoring key %s: %s", key, exc)


def _event(msg: Any) -> virtbridge.TailItem | None:
    raw: bytes = msg.data
    headers = msg.headers or {}
    try:
        if "ce-specversion" in headers:  # binary content mode
            envelope: dict[str, Any] = {
                key[3:]: value for key, value in headers.items() if key.startswith("ce-")
            }
            envelope["data"] = msgspec.json.decode(raw)
            raw = msgspec.json.encode(envelope)
        value = virtbridge.decode_cloudevent(raw)
    except (ValueError, msgspec.DecodeError) as exc:
        log.warning("ignoring a message on %s: %s", msg.subject, exc)
        return None
    return virtbridge.TailItem(value, raw)
