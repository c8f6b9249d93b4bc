"""Sink workers: one per sink, each reading the outbox from its own committed cursor.

A worker publishes in order and commits only what its sink acknowledged.  A sink that fails
is retried with exponential backoff and jitter; it never holds back the engine or another
sink, because every worker has its own cursor.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from virtbridge.errors import Rejected
from virtbridge.outbox.interface import Outbox
from virtbridge.outbox.records import Record
from virtbridge.plugin.api import Sink, SinkConfig
from virtbridge.plugin.loading import Hooks

PACE = 4096
"""Events a replay may run ahead of a sink that is delivering (or twice the sink's window
of unacknowledged events, if that is more): beyond, the replay waits for the sink."""
STALLED = 1.0
"""Seconds without progress after which a sink no longer holds a replay back."""


@dataclass
class Backoff:
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s, ... up to ``maximum``."""

    initial: float = 0.5
    maximum: float = 30.0
    attempt: int = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class SinkStats:
    """What ``virtbridge status`` shows for one sink."""

    delivered: int = 0
    filtered: int = 0
    batches: int = 0
    retries: int = 0
    failures: int = 0
    connected: bool = False
    last_error: str = ""
    last_error_at: float = 0.0
    last_delivery_at: float = 0.0
    dropped: int = 0
    """Skipped by the overflow policy ``drop-oldest``."""
    rejected: int = 0
    """Refused for good by the broker (dead-lettered or dropped, per ``on_reject``)."""


@dataclass
class Handed:
    """A batch handed to the sink: the last sequence number it covers (filtered records
    included), the records the sink got, and what acknowledges them (None: delivered)."""

    last: int
    records: Sequence[Record]
    ack: asyncio.Future[None] | None


class Handoff:
    """Batches handed over, oldest first; None marks the end."""

    def __init__(self) -> None:
        self.entries: deque[Handed | None] = deque()
        self._arrived = asyncio.Event()

    def put(self, entry: Handed | None) -> None:
        self.entries.append(entry)
        self._arrived.set()

    async def get(self) -> Handed | None:
        while not self.entries:
            self._arrived.clear()
            await self._arrived.wait()
        return self.entries.popleft()

    def settled_next(self) -> bool:
        """Whether the next batch is handed over and acknowledged already."""
        if not self.entries:
            return False
        entry = self.entries[0]
        return entry is not None and (entry.ack is None or entry.ack.done())


class PublishFailed(Exception):
    """An acknowledgement failed: everything from the first unacknowledged record goes again."""

    def __init__(self, cause: Exception, *, dropped: bool = False) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.dropped = dropped
        """The failed batch was dropped (overflow = "drop-oldest"): go on at once."""


@dataclass
class SinkWorker:
    name: str
    sink: Sink
    outbox: Outbox
    hooks: Hooks
    logger: logging.Logger
    stats: SinkStats = field(default_factory=SinkStats)
    cursor: int = 0
    """The last record delivered and committed durably."""
    filtered: bool = True
    """Whether ``virtbridge_filter_event`` applies (not for the on_event hook worker)."""
    policy: SinkConfig = field(default_factory=lambda: SinkConfig(type="?"))
    progressed: asyncio.Event | None = None
    """Set whenever the cursor moves (the bridge paces replays with it)."""

    def __post_init__(self) -> None:
        self.cursor = self.outbox.register_sink(self.name)
        self._filter = self.filtered and self.hooks.has("virtbridge_filter_event")
        self._backoff = Backoff(maximum=self.policy.retry_max_interval)
        self._careful = False
        """After a failure: one batch at a time until one is acknowledged."""
        self._room = asyncio.Event()
        self.in_flight = 0
        self._moved_at = time.monotonic()

    def holds_back(self, now: float) -> bool:
        """Whether a replay should wait for this sink: it is far behind, and delivering (it
        has moved within ``STALLED`` seconds).  One that is down or stuck does not hold a
        replay up: what it has not delivered stays in the outbox."""
        return self.lag > max(PACE, 2 * self._window()) and now - self._moved_at < STALLED

    @property
    def lag(self) -> int:
        return max(self.outbox.last_seq - self.cursor, 0)

    async def run(self) -> None:
        await self._open()
        while True:
            try:
                await self._pump()
            except PublishFailed as failure:
                self.stats.retries += 1
                self._failed("publish", failure.cause)
                self._careful = True
                if not failure.dropped:
                    await asyncio.sleep(self._backoff.next())
                continue
            return  # the outbox closed and everything is delivered

    async def _pump(self) -> None:
        """Hand batches over on one task, settle their acknowledgements in order on this one."""
        handed = Handoff()
        sender = asyncio.create_task(self._send(handed), name=f"sink-send:{self.name}")
        try:
            await self._settle(handed)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            for entry in handed.entries:
                if entry is not None and entry.ack is not None:
                    entry.ack.cancel()
            self.in_flight = 0

    def _window(self) -> int:
        sink = self.sink
        if self._careful or sink.window <= 0:
            return sink.batch_size
        return max(sink.window, sink.batch_size)

    async def _send(self, handed: Handoff) -> None:
        outbox, sink = self.outbox, self.sink
        sent = self.cursor
        room = self._room
        while True:
            window = self._window()
            while sent - self.cursor >= window:
                room.clear()
                await room.wait()
                window = self._window()
            if not await outbox.wait_beyond(sent) and outbox.durable_seq <= sent:
                handed.put(None)  # the outbox closed and everything is handed over
                return
            if self.policy.overflow == "drop-oldest" and self.lag > self.policy.max_lag:
                self._drop_oldest()
                sent = max(sent, self.cursor)
            try:
                batch = await outbox.read(sent, min(sink.batch_size, window - (sent - self.cursor)))
            except Exception as exc:  # the outbox itself failed: report, wait, try again
                self._failed("read from the outbox", exc)
                await asyncio.sleep(1.0)
                continue
            if not batch:
                continue
            wanted = [record for record in batch if self._wanted(record)] if self._filter else batch
            self.stats.filtered += len(batch) - len(wanted)
            ack: asyncio.Future[None] | None = None
            failed = False
            if wanted:
                try:
                    result = await sink.publish(wanted)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    ack = asyncio.get_running_loop().create_future()
                    ack.set_exception(exc)
                    failed = not isinstance(exc, Rejected)
                else:
                    ack = None if result is None else asyncio.ensure_future(result)
            handed.put(Handed(batch[-1].seq, wanted, ack))
            sent = batch[-1].seq
            self.in_flight = sent - self.cursor
            if failed:  # the settling side backs off and starts again from the cursor
                await asyncio.Event().wait()

    async def _settle(self, handed: Handoff) -> None:
        acknowledged = self.cursor
        while True:
            entry = await handed.get()
            if entry is None:
                if acknowledged > self.cursor:
                    await self._commit(acknowledged)
                return
            records = entry.records
            if entry.ack is not None:
                try:
                    await entry.ack
                except asyncio.CancelledError:
                    raise
                except Rejected as exc:
                    self._rejected(exc)
                    refused = {id(record) for record in exc.records}
                    records = [record for record in records if id(record) not in refused]
                except Exception as exc:
                    dropped = self._overflowing(records)
                    if dropped:  # in flight, and among the oldest: gone with drop-oldest
                        self.stats.dropped += len(records)
                        acknowledged = entry.last
                    if acknowledged > self.cursor:
                        await self._commit(acknowledged)
                    raise PublishFailed(exc, dropped=dropped) from exc
            if records:
                self.stats.delivered += len(records)
                self.stats.batches += 1
                self.stats.last_delivery_at = time.time()
            self.stats.connected = True
            self._careful = False
            self._backoff.reset()
            acknowledged = entry.last
            if not handed.settled_next():  # commit once for a run of settled batches
                await self._commit(acknowledged)

    async def _commit(self, seq: int) -> None:
        """Store the cursor; the window frees up once it is durable (a crash after this point
        repeats nothing before ``seq``)."""
        await self.outbox.commit(self.name, seq)
        self.cursor = max(self.cursor, seq)
        self._room.set()
        self._moved_at = time.monotonic()
        if self.progressed is not None:
            self.progressed.set()

    def _overflowing(self, records: Sequence[Record]) -> bool:
        policy = self.policy
        return (
            policy.overflow == "drop-oldest"
            and self.outbox.last_seq - records[0].seq >= policy.max_lag
        )

    def _drop_oldest(self) -> None:
        skipped = self.outbox.drop_oldest(self.name, self.policy.max_lag)
        if skipped:
            self.cursor = self.outbox.cursor(self.name)
            self.stats.dropped += skipped
            self.logger.warning(
                "sink %r is more than %d events behind: dropped its %d oldest (overflow = "
                "drop-oldest; %d dropped so far)",
                self.name,
                self.policy.max_lag,
                skipped,
                self.stats.dropped,
            )

    def _wanted(self, record: Record) -> bool:
        answers = self.hooks.each("virtbridge_filter_event", event=record.event, sink=self.name)
        return not any(answer is False for _, answer in answers)

    async def _open(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self.sink.open()
            except Exception as exc:
                self._failed("open", exc)
                await asyncio.sleep(backoff.next())
                continue
            self.stats.connected = True
            return

    def _rejected(self, exc: Rejected) -> None:
        self.stats.rejected += len(exc.records)
        if self.policy.on_reject == "dead-letter":
            self.outbox.dead_letter(self.name, exc.records, exc.reason)
        self.logger.warning(
            "sink %r: the broker refused %d events for good (%s): %s",
            self.name,
            len(exc.records),
            "kept in the dead-letter table"
            if self.policy.on_reject == "dead-letter"
            else "dropped",
            exc.reason,
        )

    def _failed(self, what: str, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        self.stats.failures += 1
        self.stats.connected = False
        if message != self.stats.last_error:
            self.logger.warning("sink %r: %s failed, will retry: %s", self.name, what, message)
        self.stats.last_error = message
        self.stats.last_error_at = time.time()

    def status(self) -> dict[str, Any]:
        """The worker's figures, then the sink's own (which may say better whether it is
        connected, and why not)."""
        figures: dict[str, Any] = {
            "cursor": self.cursor,
            "lag": self.lag,
            "in_flight": self.in_flight,
            **self.stats.__dict__,
        }
        try:
            figures.update(self.sink.status())
        except Exception as exc:  # a sink's status must not break the bridge's
            figures["status_error"] = f"{type(exc).__name__}: {exc}"
        return figures


class HookSink(Sink):
    """Delivers every event to the ``virtbridge_on_event`` implementations, in order.

    A raising implementation is counted and logged once per distinct error; the event is not
    retried (retrying a plugin that raises on an event would stop every later one)."""

    batch_size = 512

    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks

    async def publish(self, records: Sequence[Record]) -> None:
        each = self.hooks.each
        for record in records:
            each("virtbridge_on_event", event=record.event)
