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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from virtbridge._model import Event
from virtbridge._outbox import Outbox
from virtbridge._outbox_codec import RecordCodec
from virtbridge._records import Record, record_id

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
TRIM = 1024
READ_AHEAD = 4096
"""Events a sink behind the memory window reads from disk at a time."""
COMPACT_EVERY = 0.5
"""Seconds between deletions of what every sink has (each costs a little; none is urgent)."""


class _Pending:
    """Everything waiting for the next transaction."""

    def __init__(self, generation: int = 0) -> None:
        self.generation = generation
        self.records: list[Record] = []
        self.rows: list[tuple[int, bytes]] = []
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
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="virtbridge-reader")
        self._read_db: sqlite3.Connection | None = None
        self._readahead: list[Record] = []
        self._db: sqlite3.Connection | None = None
        self._bridge_id = ""
        self._last = 0
        self._durable = 0
        self._memory: list[Record] = []  # a list: sinks index into it (a deque is O(n) there)
        self._cursors: dict[str, int] = {}
        # The cursors as stored: compaction may only delete what these have passed, or a
        # crash before the next commit would lose events a sink has not acknowledged yet.
        self._stored_cursors: dict[str, int] = {}
        self._positions: dict[str, str] = {}
        self._pending = _Pending(1)
        self._committed_generation = 0
        self._next_id_pending: int | None = None
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
        self.saved_domains: dict[str, Any] = {}
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
        db.execute("PRAGMA wal_autocheckpoint=8192")  # 32 MiB of WAL between checkpoints
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
        self._stored_cursors = dict(self._cursors)
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
        prefix = self._bridge_id
        for event, attributes in items:
            seq += 1
            out.append(Record(seq, record_id(prefix, seq), event, attributes))
        self._last = seq
        pending = self._pending
        pending.records.extend(out)
        encode = self._encode
        pending.rows.extend([(record.seq, encode(record)) for record in out])
        memory = self._memory
        memory.extend(out)
        excess = len(memory) - self.window
        if excess >= TRIM:  # trim in chunks: deleting a list's head costs a copy
            stored = max(self._durable - memory[0].seq + 1, 0)
            if stored:
                del memory[: min(excess, stored)]
        self._wake.set()
        if self.degraded:
            self._notify()
        return out

    def save_domain(self, name: str, record: Any) -> None:
        """Store the engine's record of a domain with the next transaction (None: forget it)."""
        self._pending.domains[name] = None if record is None else self._json.encode(record).decode()

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
        start = after + 1 - ahead[0].seq
        return ahead[start : start + limit]

    def _select(self, after: int, limit: int) -> list[Record]:
        if self._read_db is None:
            self._read_db = sqlite3.connect(self.path, check_same_thread=False)
        rows = self._read_db.execute(
            "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()
        return [self._decode(seq, body) for seq, body in rows]

    def cursor(self, sink: str) -> int:
        return self._cursors.get(sink, 0)

    def register_sink(self, sink: str) -> int:
        if sink not in self._cursors:
            # A sink seen for the first time gets what happens from now on.
            self._cursors[sink] = self._last
            self._pending.cursors[sink] = self._last
        return self._cursors[sink]

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
            self._stored_cursors.update(batch.cursors)
            for sink in batch.forget:
                self._stored_cursors.pop(sink, None)
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
        self._pending.rows.extend(later.rows)
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
        rows = batch.rows
        try:
            db.execute("BEGIN")
            if rows:
                db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?)", rows)
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
            now = time.monotonic()
            if now - self._compacted_at >= COMPACT_EVERY or self._closed:
                self._compacted_at = now
                # Compaction can empty the table: the newest number must survive it.
                newest = rows[-1][0] if rows else self._durable
                db.execute("INSERT OR REPLACE INTO meta VALUES ('last_seq', ?)", (str(newest),))
                stored = {**self._stored_cursors, **batch.cursors}
                for sink in batch.forget:
                    stored.pop(sink, None)
                self._compact(db, stored)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self.stored += len(rows)
        if rows and not self._first_stored:
            self._first_stored = rows[0][0]

    def _compact(self, db: sqlite3.Connection, cursors: dict[str, int]) -> None:
        """Drop what every sink has; past ``max_events``, warn (and count) but keep."""
        low = min(cursors.values(), default=self._durable)
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
        return self._codec.encode(record)

    def _decode(self, seq: int, body: bytes) -> Record:
        return self._codec.decode(seq, body)

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
        if self._read_db is not None:
            read_db, self._read_db = self._read_db, None
            await asyncio.get_running_loop().run_in_executor(self._reader, read_db.close)
        self._executor.shutdown(wait=False)
        self._reader.shutdown(wait=False)
