"""The durable outbox: an append-only log in SQLite (WAL) under the state directory.

Appends are numbered at once (so their order is the engine's) and committed in batched
transactions: on the event loop itself with ``synchronous = NORMAL`` (a transaction is a few
writes into the write-ahead log, cheaper there than on a thread that must win the
interpreter lock back for each SQLite call), on a writer thread with ``FULL`` (each waits
for the disk).  The events of a transaction are encoded together, as one chunk.

A transaction carries, atomically, the new events, the sinks' cursors, the sources'
positions (where a replay is in its files) and the engine's records of the domains those
events touched, so after a SIGKILL everything on disk agrees: a replay resumes after the last
line whose events are stored, the engine does not re-announce what it already said, and each
sink resumes after its last acknowledged event.

Records also stay in memory for as long as a sink still needs them, up to ``window`` of
them, so sinks that keep up never read the database and a bridge whose sinks keep up holds
almost nothing; a sink that falls further behind reads, and decodes, from the database.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from virtbridge.engine.events import Event
from virtbridge.outbox.codec import RecordCodec
from virtbridge.outbox.database import (
    Compaction,
    Encoded,
    Pending,
    checkpoint,
    open_database,
    select,
    write,
)
from virtbridge.outbox.interface import Outbox
from virtbridge.outbox.records import Record, record_id

log = logging.getLogger("virtbridge.outbox")

TRIM = 1024
READ_AHEAD = 4096
"""Events a sink behind the memory window reads from disk at a time."""
COMPACT_EVERY = 0.5
"""Seconds between deletions of what every sink has (each costs a little; none is urgent)."""
CHECKPOINT_EVERY = 1.0
"""Seconds between checkpoints of the write-ahead log (on a thread of their own)."""
DIRECT_DOMAINS = 16
"""A transaction touching at most this many domains writes their records at once (see
:class:`~virtbridge.outbox.database.Encoded`)."""
CURSOR_DELAY = 0.002
"""Seconds a sink's new cursor may wait to be stored with the next events (when events came
within that time: otherwise none are expected, and it is stored at once)."""


def _seq(record: Record) -> int:
    return record.seq


class SqliteOutbox(Outbox):
    """Durable, ordered, bounded only by the disk (see ``max_events``)."""

    persists_engine = True

    def __init__(
        self,
        path: Path,
        *,
        window: int = 10_000,
        max_events: int = 0,
        synchronous: str = "NORMAL",
    ) -> None:
        super().__init__()
        self.path = path
        self.window = window
        self.max_events = max_events
        self.synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="virtbridge-outbox")
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="virtbridge-reader")
        self._read_db: sqlite3.Connection | None = None
        self._checkpointer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="virtbridge-checkpoint"
        )
        self._checkpoint_db: sqlite3.Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._checkpointed_at = 0.0
        self._readahead: list[Record] = []
        self._db: sqlite3.Connection | None = None
        self._bridge_id = ""
        self._run_token = secrets.token_hex(4)
        """This run's mark on the ids of events delivered before they could be stored."""
        self._last = 0
        self._durable = 0
        self._memory: list[Record] = []  # a list: sinks index into it (a deque is O(n) there)
        self._trim_at = window + 1
        self._cursors: dict[str, int] = {}
        # The cursors as stored: compaction may only delete what these have passed, or a
        # crash before the next commit would lose events a sink has not acknowledged yet.
        self._stored_cursors: dict[str, int] = {}
        self._pending = Pending(1)
        self._committed_generation = 0
        self._next_id_pending: int | None = None
        self._next_id_saved = 0
        self._wake_later: asyncio.TimerHandle | None = None
        self._appended_at = 0.0
        self._logged = False
        """Whether the domain log may hold records (until a compaction folds it)."""
        self._writing = False
        self._first_stored = 0
        self._compacted_at = 0.0
        self._wake = asyncio.Event()
        self._committed = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._codec = RecordCodec()
        self._json = msgspec.json.Encoder()
        self.error = ""
        self.degraded = False
        self.stored = 0
        self.overflow_warnings = 0
        self.dead_letters = 0

    # -- opening ------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open)
        self._writer = asyncio.create_task(self._write_loop(), name="virtbridge-outbox-writer")

    def _open(self) -> None:
        db, stored = open_database(self.path, self.synchronous)
        self._db = db
        self._bridge_id = stored.bridge_id
        self.saved_next_id = self._next_id_saved = stored.next_id
        self._last = self._durable = stored.last_seq
        self._cursors = dict(stored.cursors)
        self._stored_cursors = dict(stored.cursors)
        self._positions = stored.positions
        self.saved_domains = stored.domains
        self.stored = stored.count
        self._first_stored = stored.first

    async def _run(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # -- the Outbox interface -----------------------------------------------------------------

    @property
    def bridge_id(self) -> str:
        return self._bridge_id

    @property
    def last_seq(self) -> int:
        return self._last

    @property
    def backlog(self) -> int:
        """Events appended but not stored yet."""
        return self._last - self._durable

    @property
    def durable_seq(self) -> int:
        # On a full disk the bridge keeps delivering from memory: sinks see what exists.
        return self._last if self.degraded else self._durable

    def append(self, items: Sequence[tuple[Event, dict[str, Any] | None]]) -> list[Record]:
        out = []
        seq = self._last
        # While the disk refuses, events reach the sinks unstored: see _unstored_ids.
        prefix = f"{self._bridge_id}-{self._run_token}" if self.degraded else self._bridge_id
        for event, attributes in items:
            seq += 1
            out.append(Record(seq, record_id(prefix, seq), event, attributes))
        self._last = seq
        self._appended_at = time.monotonic()
        self._pending.records.extend(out)
        memory = self._memory
        memory.extend(out)
        if len(memory) >= self._trim_at:
            self._trim()
        self._wake.set()
        if self.degraded:
            self._notify()
        return out

    def save_domain(self, name: str, record: Any) -> None:
        """Store the engine's record of a domain with the next transaction (None: forget it)."""
        self._pending.domains[name] = record

    def save_next_id(self, next_id: int) -> None:
        if next_id != self._next_id_saved:
            self._next_id_saved = next_id
            self._next_id_pending = next_id

    def _woken(self) -> None:
        """A cursor waited CURSOR_DELAY for events to go with: if events came meanwhile (their
        transaction took it along, or will), wait on after the last of them; else store it."""
        later = self._appended_at + CURSOR_DELAY - time.monotonic()
        if later > 0 and not self._closed:
            self._wake_later = asyncio.get_running_loop().call_later(later, self._woken)
            return
        self._wake_later = None
        self._wake.set()

    def _undefer(self) -> None:
        """A cursor waiting for the next events goes with the next transaction, whatever it
        holds."""
        if self._wake_later is not None:
            self._wake_later.cancel()
            self._wake_later = None

    def set_position(self, source: str, value: str) -> None:
        super().set_position(source, value)
        self._pending.positions[source] = value
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything handed over so far (events, the engine's records, cursors,
        positions) is stored: the transaction being filled, or the one being written."""
        pending = self._pending
        wanted = pending.generation if pending else pending.generation - 1
        self._undefer()
        while self._committed_generation < wanted and not self._closed and not self.degraded:
            self._wake.set()
            self._committed.clear()
            if self._committed_generation >= wanted:
                break
            await self._committed.wait()

    def _trim(self) -> None:
        """Forget the records in memory that every sink has passed and that are stored; past
        ``window`` records, also stored ones a slow sink still needs (it reads them from the
        database).  Records not stored yet always stay: nothing else holds them."""
        memory = self._memory
        if not memory:
            return
        first = memory[0].seq
        durable = self._durable
        keep_from = min(min(self._cursors.values(), default=self._last), durable) + 1
        over = len(memory) - self.window
        if over > 0:
            keep_from = max(keep_from, min(first + over, durable + 1))
        drop = keep_from - first
        # In steps: deleting the head of a list copies the rest.
        if drop >= TRIM or (drop > 0 and drop == len(memory)):
            del memory[:drop]
        # Appends look again past the window, or after TRIM more if nothing could go.
        self._trim_at = max(len(memory) + TRIM, self.window + 1)

    async def read(self, after: int, limit: int) -> list[Record]:
        upper = self.durable_seq
        if after >= upper:
            return []
        memory = self._memory
        if memory and memory[0].seq <= after + 1:
            first = memory[0].seq
            return memory[after + 1 - first : min(after + 1 + limit, upper + 1) - first]
        ahead = self._readahead
        if not ahead or not ahead[0].seq <= after + 1 <= ahead[-1].seq:
            # Behind the memory window: read from disk, in large chunks, on a reader thread
            # of its own (WAL lets it read while the writer commits).
            count = min(READ_AHEAD, upper - after)
            ahead = await asyncio.get_running_loop().run_in_executor(
                self._reader, self._select, after, count
            )
            self._readahead = ahead
            if not ahead:
                return []
        start = bisect.bisect_right(ahead, after, key=_seq)  # (a gap: what follows it)
        return ahead[start : start + limit]

    def _select(self, after: int, limit: int) -> list[Record]:
        if self._read_db is None:
            self._read_db = sqlite3.connect(self.path, check_same_thread=False)
        records: list[Record] = []
        for first, _, body in select(self._read_db, after, limit):
            chunk = self._codec.decode_chunk(first, body)
            records.extend(chunk[max(after + 1 - first, 0) :])
        return records

    def cursor(self, sink: str) -> int:
        return self._cursors.get(sink, 0)

    def register_sink(self, sink: str) -> int:
        if sink not in self._cursors:
            # A sink seen for the first time gets what happens from now on.
            self._cursors[sink] = self._last
            self._pending.cursors[sink] = self._last
        return self._cursors[sink]

    def readers(self) -> dict[str, int]:
        return dict(self._cursors)

    def unregister_sink(self, sink: str) -> None:
        self._cursors.pop(sink, None)
        self._pending.forget.append(sink)
        self._wake.set()

    async def commit(self, sink: str, seq: int) -> None:
        if seq <= self._cursors.get(sink, 0):
            return
        self._cursors[sink] = seq
        self._pending.cursors[sink] = seq
        self._trim()
        if self._pending.records or time.monotonic() - self._appended_at > CURSOR_DELAY:
            self._undefer()  # with events, or none are coming (a replay waits for sinks)
            self._wake.set()
        elif self._wake_later is None:
            # A cursor alone can wait a moment for the next events' transaction, instead of
            # costing one of its own per acknowledgement.
            self._wake_later = asyncio.get_running_loop().call_later(CURSOR_DELAY, self._woken)
        # Durable before the next batch goes out: a crash repeats at most this batch.
        wanted = self._pending.generation
        while self._committed_generation < wanted and not self._closed and not self.degraded:
            self._committed.clear()
            if self._committed_generation >= wanted:
                break
            await self._committed.wait()

    def dead_letter(self, sink: str, records: Sequence[Record], error: str) -> None:
        now = time.time()
        for record in records:
            body = self._encode(record)
            self._pending.dead.append((sink, record.seq, record.id, error, now, body))
        self.dead_letters += len(records)
        self._wake.set()

    # -- the writer -----------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending or self._deferred():
                if self._closed:
                    return
                continue
            batch, next_id, compact = self._take()
            try:
                encoded = self._encoded(batch)
                if self._on_loop():
                    # With synchronous = NORMAL a transaction is a few writes into the
                    # log (no sync): it costs less on the loop than handing it to a thread,
                    # whose every SQLite call must win the interpreter lock back from the
                    # busy loop (measured: a third of the time the thread's commits took).
                    self._commit(batch, encoded, next_id, compact)
                else:
                    self._writing = True
                    try:
                        await self._run(self._commit, batch, encoded, next_id, compact)
                    finally:
                        self._writing = False
            except sqlite3.Error as exc:
                self._failed(exc, batch)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._wake.set()
                continue
            backoff = 0.1
            self._stored(batch)
            if self._closed and not self._pending:
                return

    def _deferred(self) -> bool:
        """Whether all that is pending is a cursor waiting for the next events (see commit):
        the loop may have been woken for events that store_now has taken meanwhile."""
        return (
            self._wake_later is not None
            and self._next_id_pending is None
            and self._pending.only_cursors
        )

    def store_now(self) -> None:
        """Store what is pending at once, on the loop, if nothing else is being written: the
        events of a signal are then durable (and on their way to the sinks) before the turn
        of the loop that produced them ends, instead of a turn later; a sink's cursor, when
        the bridge waits for the sink, at once instead of with the next events."""
        pending = self._pending
        if self._writing or self.degraded or not pending:
            return
        if not self._on_loop() or self._compaction_due():
            return
        batch, next_id, compact = self._take()
        try:
            self._commit(batch, self._encoded(batch), next_id, compact)
        except sqlite3.Error as exc:
            self._failed(exc, batch)
            self._wake.set()  # the write loop retries, with backoff
            return
        self._stored(batch)

    def _compaction_due(self) -> bool:
        return time.monotonic() - self._compacted_at >= COMPACT_EVERY or self._closed

    def _on_loop(self) -> bool:
        """Whether transactions are committed on the loop: with ``synchronous = FULL`` each
        waits for the disk, which the loop must not (they go to the writer thread)."""
        return self.synchronous != "FULL"

    def _encoded(self, batch: Pending) -> Encoded:
        """The batch's events and the engine's records encoded here, on the loop: the writer
        thread then holds the interpreter lock only to hand SQLite a few values."""
        # Logged, unless the log is empty and the transaction touches few domains: a record
        # written at once must not be overwritten by an older one folded from the log later.
        log = self._logged or len(batch.domains) > DIRECT_DOMAINS
        self._logged = self._logged or (log and bool(batch.domains))
        return Encoded.of(batch, self._codec, self._json, log=log)

    def _take(self) -> tuple[Pending, int | None, bool]:
        batch, self._pending = self._pending, Pending(self._pending.generation + 1)
        next_id, self._next_id_pending = self._next_id_pending, None
        return batch, next_id, self._compaction_due()

    def _stored(self, batch: Pending) -> None:
        """What follows a committed transaction."""
        self._maybe_checkpoint()
        if self.degraded:
            log.warning("outbox %s is writable again: events are durable again", self.path)
            self.degraded = False
            self.error = ""
        self._stored_cursors.update(batch.cursors)
        for sink in batch.forget:
            self._stored_cursors.pop(sink, None)
        if batch.records:
            self._durable = batch.records[-1].seq
            self._trim()
        self._committed_generation = batch.generation
        self._committed.set()
        self._notify()

    def _maybe_checkpoint(self) -> None:
        now = time.monotonic()
        busy = self._checkpointing is not None and not self._checkpointing.done()
        if busy or now - self._checkpointed_at < CHECKPOINT_EVERY:
            return
        self._checkpointed_at = now
        loop = asyncio.get_running_loop()
        self._checkpointing = loop.run_in_executor(self._checkpointer, self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._checkpoint_db is None:
                self._checkpoint_db = sqlite3.connect(self.path, check_same_thread=False)
            checkpoint(self._checkpoint_db)
        except sqlite3.Error as exc:  # the next one will try again; commits are unaffected
            log.debug("outbox checkpoint failed: %s", exc)

    def _failed(self, exc: sqlite3.Error, batch: Pending) -> None:
        # Put the batch back in front of whatever came since, in order.
        later, self._pending = self._pending, batch
        batch.generation = later.generation
        self._pending.records.extend(later.records)
        self._pending.cursors.update(later.cursors)
        self._pending.positions.update(later.positions)
        self._pending.domains.update(later.domains)
        self._pending.dead.extend(later.dead)
        self._pending.forget.extend(later.forget)
        message = f"{type(exc).__name__}: {exc}"
        if message != self.error:
            log.error(
                "outbox %s cannot store events (%s); the bridge keeps running and delivering "
                "from memory, and will retry",
                self.path,
                message,
            )
        self.error = message
        if not self.degraded:
            self._unstored_ids()
            self.degraded = True
            self._committed.set()  # nobody waits on a disk that is full
            self._notify()

    def _unstored_ids(self) -> None:
        """Events the sinks are about to get without their being stored: a crash now would
        give their sequence numbers to other events after the restart, so their ids take this
        run's token (``<bridge>-<run>-<seq>``): an id never names two events."""
        pending = self._pending
        if not pending.records:
            return
        memory = self._memory
        first = memory[0].seq if memory else 0
        renamed = []
        for record in pending.records:
            again = Record(
                record.seq, self._unstored_id(record.seq), record.event, record.attributes
            )
            renamed.append(again)
            index = record.seq - first
            if memory and 0 <= index < len(memory) and memory[index].seq == record.seq:
                memory[index] = again
        pending.records = renamed

    def _unstored_id(self, seq: int) -> str:
        return f"{self._bridge_id}-{self._run_token}-{seq}"

    def _commit(self, batch: Pending, encoded: Encoded, next_id: int | None, compact: bool) -> None:
        assert self._db is not None
        records = batch.records
        compaction = None
        if compact:
            self._compacted_at = time.monotonic()
            cursors = {**self._stored_cursors, **batch.cursors}
            for sink in batch.forget:
                cursors.pop(sink, None)
            compaction = Compaction(
                newest=records[-1].seq if records else self._durable,
                below=min(cursors.values(), default=self._durable),
                first=self._first_stored,
            )
        write(self._db, batch, encoded, next_id, compaction)
        self.stored += len(records)
        if records and not self._first_stored:
            self._first_stored = records[0].seq
        if compaction is not None:
            self._logged = False  # folded, in the same transaction
            self.stored -= compaction.deleted
            self._first_stored = compaction.first
            self._warn_if_over()

    def _warn_if_over(self) -> None:
        """Past ``max_events``: warn (and count), but keep accepting."""
        if not self.max_events or self.stored <= self.max_events:
            return
        self.overflow_warnings += 1
        if self.overflow_warnings == 1 or self.overflow_warnings % 100 == 0:
            slow = min(self._cursors, key=lambda s: self._cursors[s], default="?")
            log.warning(
                "outbox holds %d events, over max_events = %d, because sink %r is %d behind; "
                "still accepting (set the sink's overflow = 'drop-oldest' to drop instead)",
                self.stored,
                self.max_events,
                slow,
                self._last - self._cursors.get(slow, 0),
            )

    def drop_oldest(self, sink: str, keep: int) -> int:
        """Overflow policy ``drop-oldest``: move ``sink``'s cursor so it keeps at most
        ``keep`` events; returns how many it skipped."""
        cursor = self._cursors.get(sink, 0)
        target = self._last - keep
        if target <= cursor:
            return 0
        self._cursors[sink] = target
        self._pending.cursors[sink] = target
        self._wake.set()
        return target - cursor

    # -- encoding ---------------------------------------------------------------------------

    def _encode(self, record: Record) -> bytes:
        return self._codec.encode(record)

    # -- inspection ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "kind": "sqlite",
            "path": str(self.path),
            "last_seq": self._last,
            "durable_seq": self._durable,
            "stored": self.stored,
            "in_memory": len(self._memory),
            "degraded": self.degraded,
            "error": self.error,
            "overflow_warnings": self.overflow_warnings,
            "dead_letters": self.dead_letters,
        }

    async def close(self) -> None:
        self._closed = True
        self._undefer()
        self._wake.set()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer, 30)
        self._changed.set()
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        if self._checkpoint_db is not None:
            checkpoint_db, self._checkpoint_db = self._checkpoint_db, None
            await asyncio.get_running_loop().run_in_executor(
                self._checkpointer, checkpoint_db.close
            )
        self._checkpointer.shutdown(wait=False)
        if self._read_db is not None:
            read_db, self._read_db = self._read_db, None
            await asyncio.get_running_loop().run_in_executor(self._reader, read_db.close)
        self._executor.shutdown(wait=False)
        self._reader.shutdown(wait=False)
