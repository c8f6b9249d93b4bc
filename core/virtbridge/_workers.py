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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from virtbridge._outbox import Outbox
from virtbridge._plugin_api import Rejected, Sink, SinkConfig
from virtbridge._plugins import Hooks
from virtbridge._records import Record


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
class SinkWorker:
    name: str
    sink: Sink
    outbox: Outbox
    hooks: Hooks
    logger: logging.Logger
    stats: SinkStats = field(default_factory=SinkStats)
    cursor: int = 0
    filtered: bool = True
    """Whether ``virtbridge_filter_event`` applies (not for the on_event hook worker)."""
    policy: SinkConfig = field(default_factory=lambda: SinkConfig(type="?"))

    def __post_init__(self) -> None:
        self.cursor = self.outbox.register_sink(self.name)
        self._filter = self.filtered and self.hooks.has("virtbridge_filter_event")

    @property
    def lag(self) -> int:
        return max(self.outbox.last_seq - self.cursor, 0)

    async def run(self) -> None:
        await self._open()
        outbox, sink = self.outbox, self.sink
        while True:
            if not await outbox.wait_beyond(self.cursor) and outbox.durable_seq <= self.cursor:
                return  # the outbox closed and we have everything
            if self.policy.overflow == "drop-oldest" and self.lag > self.policy.max_lag:
                self._drop_oldest()
            try:
                batch = await outbox.read(self.cursor, sink.batch_size)
            except Exception as exc:  # the outbox itself failed: report, wait, try again
                self._failed("read from the outbox", exc)
                await asyncio.sleep(1.0)
                continue
            if not batch:
                continue
            wanted = [record for record in batch if self._wanted(record)] if self._filter else batch
            if wanted:
                await self._publish(wanted)
            self.stats.filtered += len(batch) - len(wanted)
            self.cursor = batch[-1].seq
            await outbox.commit(self.name, self.cursor)

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

    async def _publish(self, records: Sequence[Record]) -> None:
        backoff = Backoff(maximum=self.policy.retry_max_interval)
        while True:
            try:
                await self.sink.publish(records)
            except asyncio.CancelledError:
                raise
            except Rejected as exc:
                self._rejected(exc)
                records = [r for r in records if r not in exc.records]
                self.stats.delivered += len(records)
                self.stats.batches += 1
                return
            except Exception as exc:
                self.stats.retries += 1
                self._failed("publish", exc)
                if self._overflowing(records):
                    self.stats.dropped += len(records)  # the batch in flight is among the oldest
                    return
                await asyncio.sleep(backoff.next())
                continue
            self.stats.connected = True
            self.stats.delivered += len(records)
            self.stats.batches += 1
            self.stats.last_delivery_at = time.time()
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

    async def drained(
        self, target: int, timeout: float | None, *, while_moving: bool = False
    ) -> bool:
        """Wait until this worker has committed ``target``; False on timeout.

        ``while_moving``: the timeout counts from the worker's last progress, so a sink that is
        delivering is waited for however long it takes, and one that is stuck is given up on."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = self.cursor
        while self.cursor < target:
            now = time.monotonic()
            if while_moving and self.cursor != last and timeout is not None:
                last, deadline = self.cursor, now + timeout
            if deadline is not None and now >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def status(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "lag": self.lag,
            **self.stats.__dict__,
        }


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
