"""Reading what landed in NATS, for the tests: a whole stream, a key-value bucket."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy


@dataclass(frozen=True)
class Stored:
    subject: str
    headers: dict[str, str]
    data: bytes
    seq: int


async def _read(servers: Sequence[str], stream: str, timeout: float) -> list[Stored]:
    nc = await nats.connect(servers=list(servers), connect_timeout=5)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        total = info.state.messages
        sub = await js.pull_subscribe(
            "",
            stream=stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
        )
        out: list[Stored] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(out) < total and asyncio.get_running_loop().time() < deadline:
            try:
                batch = await sub.fetch(10_000, timeout=2)
            except nats.errors.TimeoutError:
                continue
            for msg in batch:
                out.append(
                    Stored(
                        msg.subject, dict(msg.headers or {}), msg.data, msg.metadata.sequence.stream
                    )
                )
        return out
    finally:
        await nc.close()


def read_stream(servers: Sequence[str], stream: str, timeout: float = 120) -> list[Stored]:
    """Every message of ``stream``, in stream order."""
    return asyncio.run(_read(servers, stream, timeout))


async def _bucket(servers: Sequence[str], bucket: str) -> dict[str, bytes]:
    nc = await nats.connect(servers=list(servers), connect_timeout=5)
    try:
        kv = await nc.jetstream().key_value(bucket)
        try:
            keys = await kv.keys()
        except nats.js.errors.NoKeysError:
            return {}
        out = {}
        for key in keys:
            entry = await kv.get(key)
            if entry.value:
                out[key] = entry.value
        return out
    finally:
        await nc.close()


def read_bucket(servers: Sequence[str], bucket: str) -> dict[str, bytes]:
    """Every live key of a key-value bucket and its value."""
    return asyncio.run(_bucket(servers, bucket))
