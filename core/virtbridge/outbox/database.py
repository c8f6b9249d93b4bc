"""The SQLite side of the durable outbox: the schema, and writing one batch as one
transaction (runs on the outbox's writer thread; no asyncio here).

Events are stored a transaction's worth at a time: one ``chunks`` row holds the events
``first``..``last`` (contiguous sequence numbers), encoded together by the codec.  One row
per event cost the writer a statement, an index entry and a parameter binding under the
interpreter lock per event; a chunk costs that once per transaction, and compaction deletes
whole chunks every sink has passed.  Version 1 (one row per event) is converted on opening.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from virtbridge.outbox.codec import RecordCodec, chunk_of_encoded, compress, decompress
from virtbridge.outbox.records import Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    last INTEGER PRIMARY KEY, first INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS positions (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (name TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domain_log (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    sink TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, error TEXT NOT NULL,
    at REAL NOT NULL, body BLOB NOT NULL, PRIMARY KEY (sink, seq));
"""
VERSION = "2"
CONVERT_CHUNK = 4096
"""Events per chunk when a version 1 database is converted."""


class Pending:
    """Everything waiting for the next transaction."""

    def __init__(self, generation: int = 0) -> None:
        self.generation = generation
        self.records: list[Record] = []
        self.cursors: dict[str, int] = {}
        self.positions: dict[str, str] = {}
        self.domains: dict[str, Any] = {}
        """name → the engine's record of the domain (JSON-ready), or None: forget it."""
        self.dead: list[tuple[str, int, str, str, float, bytes]] = []
        self.forget: list[str] = []

    @property
    def only_cursors(self) -> bool:
        """Whether all there is to store is sinks' cursors (nothing at all: also true)."""
        return not (self.records or self.positions or self.domains or self.dead or self.forget)

    def __bool__(self) -> bool:
        return bool(self.cursors) or not self.only_cursors


class Encoded(msgspec.Struct):
    """A batch's bulk parts, each one value for one statement however many rows it holds.

    A transaction that touches many domains logs the engine's records in ``domain_log`` as
    one row (a JSON object, name → record or null, compressed like the events); they are
    folded into ``domains`` every so often (see :func:`fold`) and when opening.  One that
    touches a few (a live host: one signal, one domain) writes them into ``domains`` at
    once, as long as nothing is logged: then folding costs nothing, and no compaction
    stalls the loop for a fold of hundreds of rows.  Upserting each record in every
    transaction dirtied a page of the ``domains`` index per domain, and each commit wrote
    them all into the log again; uncompressed, the records of a transaction took more room
    than its events."""

    chunk: bytes | None = None
    """The events (see the codec)."""
    domains: bytes | None = None
    """The engine's records of the domains the transaction touched, for the log."""
    upserts: list[tuple[str, str]] | None = None
    """Or the records to write into ``domains`` at once (name, JSON)."""
    forgotten: list[tuple[str]] | None = None
    """And the domains to delete from it."""

    @classmethod
    def of(
        cls, batch: Pending, codec: RecordCodec, json: msgspec.json.Encoder, *, log: bool
    ) -> Encoded:
        chunk = codec.encode_chunk(batch.records) if batch.records else None
        if not batch.domains:
            return cls(chunk)
        if log:
            return cls(chunk, compress(json.encode(batch.domains)))
        items = batch.domains.items()
        return cls(
            chunk,
            upserts=[
                (name, json.encode(record).decode()) for name, record in items if record is not None
            ],
            forgotten=[(name,) for name, record in items if record is None],
        )


@dataclass
class Stored:
    """What a database holds when it is opened."""

    bridge_id: str
    last_seq: int
    next_id: int
    cursors: dict[str, int]
    positions: dict[str, str]
    domains: dict[str, Any]
    count: int
    first: int


def open_database(path: Path, synchronous: str) -> tuple[sqlite3.Connection, Stored]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    private(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    # Checkpoints run on a connection of their own (see checkpoint()): here one would stall
    # the commit that happens to trigger it for the checkpoint's sync.
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.executescript(SCHEMA)
    meta = dict(db.execute("SELECT key, value FROM meta"))
    if meta.get("version") == "1":
        _convert_from_version_1(db)
    elif meta.get("version", VERSION) != VERSION:
        raise RuntimeError(f"{path}: outbox format {meta['version']} is not {VERSION}")
    bridge_id = meta.get("bridge_id") or str(uuid.uuid4())
    # Written at every open, also to pay the first transaction's cost (the log's header is
    # synced) now, not in the middle of the first delivery.
    db.execute("BEGIN")
    fold(db)
    db.executemany(
        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
        [("bridge_id", bridge_id), ("version", VERSION), ("opened_at", repr(time.time()))],
    )
    db.execute("COMMIT")
    private(path)  # the log and its index exist now
    last, first, count = db.execute(
        "SELECT MAX(last), MIN(first), SUM(last - first + 1) FROM chunks"
    ).fetchone()
    stored = Stored(
        bridge_id=bridge_id,
        last_seq=max(last or 0, int(meta.get("last_seq", "0"))),
        next_id=int(meta.get("next_id", "1")),
        cursors=dict(db.execute("SELECT sink, seq FROM cursors")),
        positions=dict(db.execute("SELECT source, value FROM positions")),
        domains={
            name: msgspec.json.decode(record)
            for name, record in db.execute("SELECT name, record FROM domains")
        },
        count=count or 0,
        first=first or 0,
    )
    return db, stored


def _convert_from_version_1(db: sqlite3.Connection) -> None:
    """One row per event (version 1) → chunks of contiguous events, in one transaction."""
    db.execute("BEGIN")
    try:
        rows = db.execute("SELECT seq, body FROM events ORDER BY seq")
        run: list[tuple[int, bytes]] = []

        def flush() -> None:
            if run:
                db.execute(
                    "INSERT INTO chunks VALUES (?, ?, ?)",
                    (run[-1][0], run[0][0], chunk_of_encoded([body for _, body in run])),
                )
                run.clear()

        for seq, body in rows.fetchall():
            if run and (seq != run[-1][0] + 1 or len(run) >= CONVERT_CHUNK):
                flush()
            run.append((seq, body))
        flush()
        db.execute("DROP TABLE events")
        db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (VERSION,))
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def private(path: Path) -> None:
    """The outbox holds client addresses and certificate names from graphics events: only
    the bridge's user reads it (the database, its write-ahead log and its index)."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            if name.stat().st_mode & 0o077:
                name.chmod(0o600)


@dataclass
class Compaction:
    """Delete the chunks every sink's stored cursor has passed (``below``), recording the
    newest sequence number first, since deleting can empty the table."""

    newest: int
    below: int
    first: int
    deleted: int = field(default=0)


def write(
    db: sqlite3.Connection,
    batch: Pending,
    encoded: Encoded,
    next_id: int | None,
    compaction: Compaction | None,
) -> None:
    """Everything in ``batch`` in one transaction (its bulk as ``encoded``); all or nothing."""
    records = batch.records
    try:
        db.execute("BEGIN")
        if encoded.chunk is not None:
            db.execute(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?)",
                (records[-1].seq, records[0].seq, encoded.chunk),
            )
        if batch.cursors:
            db.executemany("INSERT OR REPLACE INTO cursors VALUES (?, ?)", batch.cursors.items())
        for sink in batch.forget:
            db.execute("DELETE FROM cursors WHERE sink = ?", (sink,))
        if batch.positions:
            db.executemany(
                "INSERT OR REPLACE INTO positions VALUES (?, ?)", batch.positions.items()
            )
        if encoded.domains is not None:
            db.execute("INSERT INTO domain_log (body) VALUES (?)", (encoded.domains,))
        if encoded.upserts:
            db.executemany("INSERT OR REPLACE INTO domains VALUES (?, ?)", encoded.upserts)
        if encoded.forgotten:
            db.executemany("DELETE FROM domains WHERE name = ?", encoded.forgotten)
        if next_id is not None:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('next_id', ?)", (str(next_id),))
        if batch.dead:
            db.executemany(
                "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?)", batch.dead
            )
        if compaction is not None:
            fold(db)
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('last_seq', ?)", (str(compaction.newest),)
            )
            if compaction.below > 0 and compaction.below >= compaction.first:
                deleted = db.execute(
                    "SELECT SUM(last - first + 1) FROM chunks WHERE last <= ?",
                    (compaction.below,),
                ).fetchone()[0]
                db.execute("DELETE FROM chunks WHERE last <= ?", (compaction.below,))
                compaction.deleted = deleted or 0
                first = db.execute("SELECT MIN(first) FROM chunks").fetchone()[0]
                compaction.first = first or 0
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


_LOG_ENTRY = msgspec.json.Decoder(dict[str, msgspec.Raw])


def fold(db: sqlite3.Connection) -> None:
    """Fold the domain log into ``domains``, each name's newest entry winning, null meaning
    forgotten (inside the caller's transaction).  The records stay JSON text, untouched."""
    newest: dict[str, msgspec.Raw] = {}
    for (body,) in db.execute("SELECT body FROM domain_log ORDER BY seq").fetchall():
        newest.update(_LOG_ENTRY.decode(decompress(body)))
    if not newest:
        return
    kept: list[tuple[str, str]] = []
    forgotten: list[tuple[str]] = []
    for name, record in newest.items():
        text = bytes(record)
        if text == b"null":
            forgotten.append((name,))
        else:
            kept.append((name, text.decode()))
    db.executemany("DELETE FROM domains WHERE name = ?", forgotten)
    db.executemany("INSERT OR REPLACE INTO domains VALUES (?, ?)", kept)
    db.execute("DELETE FROM domain_log")


def checkpoint(db: sqlite3.Connection) -> None:
    """Copy what the write-ahead log holds into the database, without waiting for (or
    holding up) the writer."""
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def select(db: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, int, bytes]]:
    """The chunks holding the events after ``after``, enough for ``limit`` of them, as
    (first, last, body), in order."""
    chunks: list[tuple[int, int, bytes]] = []
    count = 0
    for first, last, body in db.execute(
        "SELECT first, last, body FROM chunks WHERE last > ? ORDER BY last", (after,)
    ):
        chunks.append((first, last, body))
        count += last - max(first - 1, after)
        if count >= limit:
            break
    return chunks


__all__ = [
    "Compaction",
    "Encoded",
    "Pending",
    "Record",
    "Stored",
    "checkpoint",
    "open_database",
    "select",
    "write",
]
