"""The NATS sink: core NATS (at most once) or JetStream (acknowledged, deduplicated), and every
domain's state in a JetStream key-value bucket.

JetStream publishing is pipelined: each event is published with a reply subject of the
sink's own inbox (one subscription for all of them), and a batch is acknowledged when
JetStream has acknowledged each of its events and the states they set; the worker keeps up to
``max_inflight`` events outstanding.  Every event carries ``Nats-Msg-Id`` = its CloudEvents
id, so whatever is sent again (after a time-out, a lost connection, a leader election) is
stored once.  On a disconnect every outstanding batch fails at once and the client's unwritten
buffer is dropped, so the worker sends again from the first unacknowledged event, in order,
one batch at a time until one is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from typing import Any

import msgspec
from nats.aio.msg import Msg

import virtbridge

from ._config import NatsConfig
from ._connection import ConnectError, Connection
from ._names import state_key, subject_token
from ._stream import StreamPlan, StreamProblem, ensure_bucket, ensure_stream

CONTENT_TYPE = "application/cloudevents+json"
TOO_LARGE = 10054
"""JetStream's "message size exceeds maximum allowed": a refusal for good."""


class JetStreamError(ConnectionError):
    """JetStream answered a publish with an error (sent again after a backoff)."""


class NatsSink(virtbridge.Sink):
    def __init__(self, config: NatsConfig, ctx: virtbridge.SinkContext) -> None:
        self.config = config
        self.ctx = ctx
        self.batch_size = config.batch_size
        self.window = config.max_inflight
        self.jetstream = bool(config.stream)
        self.bucket = config.bucket
        self.conn = self._connection(f"virtbridge-{ctx.host}")
        self.conn.on_disconnected = self._disconnected
        self.prefix = f"{config.subject_prefix}.{subject_token(ctx.host)}.domain."
        self._subjects: dict[tuple[str, str], str] = {}
        self._encode = msgspec.json.Encoder().encode
        self._inbox = ""
        self._tokens = itertools.count(1)
        self._pending: dict[str, tuple[virtbridge.Acks, virtbridge.Record | None]] = {}
        self.states = virtbridge.DomainStates(ctx.host)
        self._waiting: list[virtbridge.Acks] = []
        self._states_due = virtbridge.OneAtATime(self._flush_soon)
        self._flushing: asyncio.Future[None] | None = None
        self.duplicates = 0
        self.described = ""

    def _connection(self, name: str) -> Connection:
        config = self.config
        return Connection(
            config.server_list,
            name=name,
            logger=self.ctx.logger,
            tls=config.tls_context(),
            user=config.user,
            password=config.password,
            token=config.token,
            nkey_seed=config.nkey_seed,
            credentials=config.credentials,
            reconnect_buffer=config.reconnect_buffer,
            reconnect_wait=config.reconnect_wait,
            connect_timeout=config.connect_timeout,
        )

    # -- opening ------------------------------------------------------------------------------

    async def open(self) -> None:
        nc = await self.conn.connect()
        try:
            self.described = await self._prepare(self.conn)
        except StreamProblem:
            await self.conn.close()
            self.conn = self._connection(f"virtbridge-{self.ctx.host}")
            self.conn.on_disconnected = self._disconnected
            raise
        if self.jetstream or self.bucket:
            self._inbox = nc.new_inbox() + "."
            await nc.subscribe(self._inbox + "*", cb=self._answer)

    async def _prepare(self, conn: Connection) -> str:
        """Check (or create) the stream and the bucket; a one-line description."""
        config, nc = self.config, conn.nc
        assert nc is not None
        parts = [f"{config.subject_prefix}.{subject_token(self.ctx.host)}.domain.*.*"]
        js = nc.jetstream()
        if self.jetstream:
            plan = StreamPlan(
                name=config.stream,
                subject=parts[0],
                prefix=config.subject_prefix,
                replicas=config.replicas,
                duplicate_window=config.window_seconds,
                create=config.create_stream,
            )
            parts.append(await ensure_stream(js, plan, self.ctx.logger))
        else:
            parts.append("core NATS, at most once")
        if self.bucket:
            parts.append(
                await ensure_bucket(js, self.bucket, config.replicas, config.create_stream)
            )
        return ", ".join(parts)

    # -- publishing ----------------------------------------------------------------------------

    def subject(self, record: virtbridge.Record) -> str:
        event = record.event
        key = (event.domain.name, event.kind.kind)
        subject = self._subjects.get(key)
        if subject is None:
            if len(self._subjects) > 65_536:
                self._subjects.clear()
            subject = self._subjects[key] = f"{self.prefix}{subject_token(key[0])}.{key[1]}"
        return self.ctx.topic(record, subject)

    async def publish(
        self, records: Sequence[virtbridge.Record]
    ) -> virtbridge.Acknowledgement | None:
        conn = self.conn
        if not conn.connected:
            await conn.wait_up()
        nc = conn.nc
        assert nc is not None
        acks = virtbridge.Acks()
        binary = self.config.content_mode == "binary"
        if self.jetstream:
            inbox, tokens, pending = self._inbox, self._tokens, self._pending
            for record in records:
                payload, headers = self._message(record, binary)
                token = str(next(tokens))
                acks.expect()
                pending[token] = (acks, record)
                await nc.publish(self.subject(record), payload, inbox + token, headers)
        else:
            for record in records:
                payload, headers = self._message(record, binary)
                await nc.publish(self.subject(record), payload, headers=headers)
            # Core NATS acknowledges nothing: the server's answer to a PING says only that it
            # read everything before it.
            acks.expect()
            flushed = asyncio.ensure_future(nc.flush(timeout=int(self.config.ack_timeout) or 1))
            virtbridge.follow(flushed, [acks])
        if self.bucket and self.states.note(records):
            acks.expect()
            self._waiting.append(acks)
            self._states_due.request()
        future = acks.seal()
        if self.jetstream or self.bucket:
            asyncio.get_running_loop().call_later(self.config.ack_timeout, self._expire, acks)
        return future

    def _message(self, record: virtbridge.Record, binary: bool) -> tuple[bytes, dict[str, str]]:
        envelope = self.ctx.cloudevent(record)
        if not binary:
            return self._encode(envelope), {
                "Nats-Msg-Id": record.id,
                "Content-Type": CONTENT_TYPE,
            }
        data = envelope.pop("data")
        headers = {"Nats-Msg-Id": record.id}
        headers["Content-Type"] = str(envelope.pop("datacontenttype", "application/json"))
        for key, value in envelope.items():
            headers[f"ce-{key}"] = str(value)
        return self._encode(data), headers

    def _flush_soon(self) -> asyncio.Future[None]:
        """Start a flush (see _flush); what this returns completes with its puts."""
        flush = virtbridge.Acks()
        self._flushing = asyncio.ensure_future(self._flush(flush))
        return flush.future

    async def _flush(self, flush: virtbridge.Acks) -> None:
        """Put the states that changed since the last flush into the bucket; the batches
        that changed them are acknowledged when these puts are."""
        waiting, self._waiting = self._waiting, []
        nc = self.conn.nc
        try:
            if nc is None:
                raise ConnectionError("not connected")
            for name, status in self.states.changes().items():
                token = str(next(self._tokens))
                subject = f"$KV.{self.bucket}.{state_key(self.ctx.host, name)}"
                flush.expect()
                self._pending[token] = (flush, None)
                if status is None:  # undefined: the key goes
                    await nc.publish(subject, b"", self._inbox + token, {"KV-Operation": "DEL"})
                else:
                    await nc.publish(subject, self._encode(status), self._inbox + token)
        except Exception as exc:
            self.states.forget()
            flush.failed(exc)
        virtbridge.follow(flush.seal(), waiting)
        asyncio.get_running_loop().call_later(self.config.ack_timeout, self._expire, flush)

    async def _answer(self, msg: Msg) -> None:
        """JetStream's answer to one publish (an event or a state)."""
        token = msg.subject[len(self._inbox) :]
        waiting = self._pending.pop(token, None)
        if waiting is None:
            return
        acks, record = waiting
        headers = msg.headers
        if headers and headers.get("Status") == "503":
            self._failed(acks, JetStreamError("no responders: the stream has no leader (yet)"))
            return
        data = msg.data
        if b'"error"' in data:
            try:
                error = msgspec.json.decode(data)["error"]
            except Exception:
                error = {"description": data.decode(errors="replace")}
            if error.get("err_code") == TOO_LARGE:
                acks.refused(record)
                return
            self._failed(acks, JetStreamError(f"JetStream: {error.get('description', error)}"))
            return
        if b'"duplicate":true' in data:
            self.duplicates += 1
        acks.ok()

    def _failed(self, acks: virtbridge.Acks, exc: Exception) -> None:
        self.states.forget()  # the batch goes again, and its states with it
        acks.failed(exc)

    def _expire(self, acks: virtbridge.Acks) -> None:
        if acks.future.done():
            return
        self._failed(
            acks,
            TimeoutError(f"no acknowledgement within {self.config.ack_timeout:g} s"),
        )
        for token in [t for t, (a, _) in self._pending.items() if a is acks]:
            del self._pending[token]

    def _disconnected(self) -> None:
        """Everything outstanding goes again after the reconnect, from the first
        unacknowledged event."""
        pending, self._pending = self._pending, {}
        lost = ConnectionError("the connection to NATS was lost")
        for acks, _ in pending.values():
            acks.failed(lost)
        for acks in self._waiting:
            acks.failed(lost)
        self.states.forget()

    # -- the rest of the Sink interface --------------------------------------------------------

    async def close(self) -> None:
        conn = self.conn
        if conn.nc is not None and conn.connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.nc.flush(), 2)
        await conn.close()
        for acks, _ in self._pending.values():
            if not acks.future.done():
                acks.future.cancel()
        self._pending.clear()

    async def check(self) -> str:
        probe = self._connection(f"virtbridge-{self.ctx.host}-check")
        try:
            await probe.connect()
            described = await self._prepare(probe)
        except (ConnectError, StreamProblem) as exc:
            raise ConnectionError(str(exc)) from None
        finally:
            await probe.close()
        return f"connected to {probe.addresses()}: {described}"

    def status(self) -> dict[str, Any]:
        conn = self.conn
        figures: dict[str, Any] = {
            "connected": conn.connected,
            "servers": conn.addresses(),
            "unacknowledged": len(self._pending),
            "reconnect_buffer": conn.buffered,
            "reconnects": conn.disconnects,
            "duplicates": self.duplicates,
            "domains": len(self.states.current),
        }
        if not conn.connected and conn.error:
            figures["last_error"] = conn.error
            figures["last_error_at"] = conn.error_at
        return figures
