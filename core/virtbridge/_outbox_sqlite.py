"""The durable outbox: an append-only log in SQLite (WAL) under the state directory.

Appends are numbered at once (so their order is the engine's) and committed by one writer in
batched transactions on a thread of its own.  A transaction carries, atomically, the new
events, the sinks' cursors, the sources' positions (where a replay is in its files) and the
engine's records of the domains those events touched, so after a SIGKILL everything on disk
agrees: a replay resumes after the last line whose events are stored, the engine does not
re-announce what it already said, and each sink resumes after its last acknowledged event.

Recent records also stay in memory (a bounded window) so sinks that keep up never read the
database; a sink that falls behind reads, and decodes, from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from virtbridge._model import Event
from virtbridge._outbox import Outbox
from virtbridge._records import Record, record_id
from virtbridge._trace import parse_object, payload_to_object, signal_to_object
from virtbridge._wire import event_from_parts

log = logging.getLogger("virtbridge.outbox")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS positions (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    sink TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, error TEXT NOT NULL,
    at REAL NOT NULL, body BLOB NOT NULL, PRIMARY KEY (sink, seq));
"""
VERSION = "1"


class _Pending:
    """Everything waiting for the next transaction."""

    def __init__(self, generation: int = 0) -> None:
        self.generation = generation
        self.records: list[Record] = []
        self.cursors: dict[str, int] = {}
        self.positions: dict[str, str] = {}
        self.domains: dict[str, str | None] = {}
        self.dead: list[tuple[str, int, str, str, float, bytes]] = []
        self.forget: list[str] = []

    def __bool__(self) -> bool:
        return bool(
            self.records
            or self.cursors
            or self.positions
            or self.domains
            or self.dead
            or self.forget
        )


class SqliteOutbox(Outbox):
    """Durable, ordered, bounded only by the disk (see ``max_events``)."""

    persists_engine = True

    def __init__(
        self,
        path: Path,
        *,
        window: int = 50_000,
        max_events: int = 0,
        synchronous: str = "NORMAL",
    ) -> None:
        super().__init__()
        self.path = path
        self.window = window
        self.max_events = max_events
        self.synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="virtbridge-outbox")
        self._db: sqlite3.Connection | None = None
        self._bridge_id = ""
        self._last = 0
        self._durable = 0
        self._memory: deque[Record] = deque()
        self._cursors: dict[str, int] = {}
        self._positions: dict[str, str] = {}
        self._pending = _Pending(1)
        self._committed_generation = 0
        self._next_id_pending: int | None = None
        self._first_stored = 0
        self._wake = asyncio.Event()
        self._committed = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder()
        self.error = ""
        self.degraded = False
        self.stored = 0
        self.overflow_warnings = 0
        self.dead_letters = 0
        self.saved_domains: dict[str, dict[str, Any]] = {}
        self.saved_next_id = 1

    # -- opening ------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open)
        self._writer = asyncio.create_task(self._write_loop(), name="virtbridge-outbox-writer")

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.executescript(SCHEMA)
        self._db = db
        meta = dict(db.execute("SELECT key, value FROM meta"))
        if meta.get("version", VERSION) != VERSION:
            raise RuntimeError(f"{self.path}: outbox format {meta['version']} is not {VERSION}")
        self._bridge_id = meta.get("bridge_id") or str(uuid.uuid4())
        if "bridge_id" not in meta:
            with db:
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("bridge_id", self._bridge_id), ("version", VERSION)],
                )
        self.saved_next_id = int(meta.get("next_id", "1"))
        last = db.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        self._last = self._durable = max(last or 0, int(meta.get("last_seq", "0")))
        self._cursors = dict(db.execute("SELECT sink, seq FROM cursors"))
        self._positions = dict(db.execute("SELECT source, value FROM positions"))
        self.saved_domains = {
            name: msgspec.json.decode(record)
            for name, record in db.execute("SELECT name, record FROM domains")
        }
        self.stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        self._first_stored = db.execute("SELECT MIN(seq) FROM events").fetchone()[0] or 0

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
    def durable_seq(self) -> int:
        # On a full disk the bridge keeps delivering from memory: sinks see what exists.
        return self._last if self.degraded else self._durable

    def append(self, items: Sequence[tuple[Event, dict[str, Any] | None]]) -> list[Record]:
        out = []
        seq = self._last
        prefix = self._bridge_id
        for event, attributes in items:
            seq += 1
            out.append(Record(seq, record_id(prefix, seq), event, attributes))
        self._last = seq
        self._pending.records.extend(out)
        self._memory.extend(out)
        while len(self._memory) > self.window and self._memory[0].seq <= self._durable:
            self._memory.popleft()
        self._wake.set()
        if self.degraded:
            self._notify()
        return out

    def save_domain(self, name: str, record: dict[str, Any] | None) -> None:
        """Store the engine's record of a domain with the next transaction (None: forget it)."""
        self._pending.domains[name] = (
            None if record is None else msgspec.json.encode(record).decode()
        )

    def save_next_id(self, next_id: int) -> None:
        self._next_id_pending = next_id

    def position(self, source: str) -> str | None:
        return self._positions.get(source)

    def set_position(self, source: str, value: str) -> None:
        self._positions[source] = value
        self._pending.positions[source] = value
        self._wake.set()

    async def flush(self) -> None:
        target = self._last
        while self._durable < target and not self._closed and not self.degraded:
            self._wake.set()
            self._committed.clear()
            if self._durable >= target:
                break
            await self._committed.wait()

    async def read(self, after: int, limit: int) -> list[Record]:
        upper = self.durable_seq
        if after >= upper:
            return []
        memory = self._memory
        if memory and memory[0].seq <= after + 1:
            start = after + 1 - memory[0].seq
            out = []
            for index in range(start, min(start + limit, len(memory))):
                record = memory[index]
                if record.seq > upper:
                    break
                out.append(record)
            return out
        rows = await self._run(self._select, after, min(limit, upper - after))
        return [self._decode(seq, body) for seq, body in rows]

    def _select(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        assert self._db is not None
        return self._db.execute(
            "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()

    def cursor(self, sink: str) -> int:
        return self._cursors.get(sink, 0)

    def register_sink(self, sink: str) -> int:
        if sink not in self._cursors:
            # A new sink starts with what is still stored, not with the bridge's whole past.
            self._cursors[sink] = self._oldest_stored() - 1
            self._pending.cursors[sink] = self._cursors[sink]
        return self._cursors[sink]

    def _oldest_stored(self) -> int:
        held = [self._memory[0].seq] if self._memory else []
        if self.stored and self._first_stored:
            held.append(self._first_stored)
        return min(held) if held else self._last + 1

    def unregister_sink(self, sink: str) -> None:
        self._cursors.pop(sink, None)
        self._pending.forget.append(sink)
        self._wake.set()

    async def commit(self, sink: str, seq: int) -> None:
        if seq <= self._cursors.get(sink, 0):
            return
        self._cursors[sink] = seq
        self._pending.cursors[sink] = seq
        self._wake.set()
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
            if not self._pending:
                if self._closed:
                    return
                continue
            batch, self._pending = self._pending, _Pending(self._pending.generation + 1)
            next_id, self._next_id_pending = self._next_id_pending, None
            try:
                await self._run(self._commit, batch, next_id)
            except sqlite3.Error as exc:
                self._failed(exc, batch)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self._wake.set()
                continue
            backoff = 0.1
            if self.degraded:
                log.warning("outbox %s is writable again: events are durable again", self.path)
                self.degraded = False
                self.error = ""
            if batch.records:
                self._durable = batch.records[-1].seq
            self._committed_generation = batch.generation
            self._committed.set()
            self._notify()
            if self._closed and not self._pending:
                return

    def _failed(self, exc: sqlite3.Error, batch: _Pending) -> None:
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
            self.degraded = True
            self._committed.set()  # nobody waits on a disk that is full
            self._notify()

    def _commit(self, batch: _Pending, next_id: int | None) -> None:
        db = self._db
        assert db is not None
        rows = [(record.seq, self._encode(record)) for record in batch.records]
        try:
            db.execute("BEGIN")
            if rows:
                db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?)", rows)
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('last_seq', ?)", (str(rows[-1][0]),)
                )
            if batch.cursors:
                db.executemany(
                    "INSERT OR REPLACE INTO cursors VALUES (?, ?)", batch.cursors.items()
                )
            for sink in batch.forget:
                db.execute("DELETE FROM cursors WHERE sink = ?", (sink,))
            if batch.positions:
                db.executemany(
                    "INSERT OR REPLACE INTO positions VALUES (?, ?)", batch.positions.items()
                )
            kept = [(name, record) for name, record in batch.domains.items() if record is not None]
            gone = [(name,) for name, record in batch.domains.items() if record is None]
            if kept:
                db.executemany("INSERT OR REPLACE INTO domains VALUES (?, ?)", kept)
            if gone:
                db.executemany("DELETE FROM domains WHERE name = ?", gone)
            if next_id is not None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('next_id', ?)", (str(next_id),))
            if batch.dead:
                db.executemany(
                    "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?)", batch.dead
                )
            self._compact(db)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self.stored += len(rows)
        if rows and not self._first_stored:
            self._first_stored = rows[0][0]

    def _compact(self, db: sqlite3.Connection) -> None:
        """Drop what every sink has; past ``max_events``, warn (and count) but keep."""
        low = min(self._cursors.values(), default=self._last)
        if low > 0 and low >= self._first_stored:
            deleted = db.execute("DELETE FROM events WHERE seq <= ?", (low,)).rowcount
            self.stored -= max(deleted, 0)
            first = db.execute("SELECT MIN(seq) FROM events").fetchone()[0]
            self._first_stored = first or 0
        if self.max_events and self.stored > self.max_events:
            self.overflow_warnings += 1
            if self.overflow_warnings == 1 or self.overflow_warnings % 1000 == 0:
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
        event = record.event
        stamp = event.timestamp
        return self._encoder.encode(
            (
                record.id,
                int(event.kind),
                event.domain.name,
                event.domain.uuid,
                event.domain.id,
                int(event.state),
                event.reason,
                None if stamp is None else (stamp.seconds, stamp.microseconds),
                payload_to_object(event.payload),
                signal_to_object(event.cause),
                record.attributes,
            )
        )

    def _decode(self, seq: int, body: bytes) -> Record:
        item = self._decoder.decode(body)
        (event_id, kind, name, uuid_, id_, state, reason, stamp, payload, cause, attributes) = item
        event = event_from_parts(
            kind, name, uuid_, id_, state, reason, stamp, payload, parse_object(cause)
        )
        return Record(seq, event_id, event, attributes)

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
        self._wake.set()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer, 30)
        self._changed.set()
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=False)
