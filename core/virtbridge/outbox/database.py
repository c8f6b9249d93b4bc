"""The SQLite side of the durable outbox: the schema, and writing one batch as one
transaction (runs on the outbox's writer thread; no asyncio here)."""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from virtbridge.outbox.records import Record

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


class Pending:
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
    if meta.get("version", VERSION) != VERSION:
        raise RuntimeError(f"{path}: outbox format {meta['version']} is not {VERSION}")
    bridge_id = meta.get("bridge_id") or str(uuid.uuid4())
    # Written at every open, also to pay the first transaction's cost (the log's header is
    # synced) now, not in the middle of the first delivery.
    db.execute("BEGIN")
    db.executemany(
        "INSERT OR REPLACE INTO meta VALUES (?, ?)",
        [("bridge_id", bridge_id), ("version", VERSION), ("opened_at", repr(time.time()))],
    )
    db.execute("COMMIT")
    private(path)  # the log and its index exist now
    last = db.execute("SELECT MAX(seq) FROM events").fetchone()[0]
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
        count=db.execute("SELECT COUNT(*) FROM events").fetchone()[0],
        first=db.execute("SELECT MIN(seq) FROM events").fetchone()[0] or 0,
    )
    return db, stored


def private(path: Path) -> None:
    """The outbox holds client addresses and certificate names from graphics events: only
    the bridge's user reads it (the database, its write-ahead log and its index)."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            if name.stat().st_mode & 0o077:
                name.chmod(0o600)


@dataclass
class Compaction:
    """Delete what every sink's stored cursor has passed (``below``), recording the newest
    sequence number first, since deleting can empty the events table."""

    newest: int
    below: int
    first: int
    deleted: int = field(default=0)


def write(
    db: sqlite3.Connection, batch: Pending, next_id: int | None, compaction: Compaction | None
) -> None:
    """Everything in ``batch`` in one transaction; all or nothing."""
    rows = batch.rows
    try:
        db.execute("BEGIN")
        if rows:
            db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?)", rows)
        if batch.cursors:
            db.executemany("INSERT OR REPLACE INTO cursors VALUES (?, ?)", batch.cursors.items())
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
        if compaction is not None:
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('last_seq', ?)", (str(compaction.newest),)
            )
            if compaction.below > 0 and compaction.below >= compaction.first:
                cursor = db.execute("DELETE FROM events WHERE seq <= ?", (compaction.below,))
                compaction.deleted = max(cursor.rowcount, 0)
                first = db.execute("SELECT MIN(seq) FROM events").fetchone()[0]
                compaction.first = first or 0
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def checkpoint(db: sqlite3.Connection) -> None:
    """Copy what the write-ahead log holds into the database, without waiting for (or
    holding up) the writer."""
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def select(db: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, bytes]]:
    rows: list[tuple[int, bytes]] = db.execute(
        "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
    ).fetchall()
    return rows


__all__ = [
    "Compaction",
    "Pending",
    "Record",
    "Stored",
    "checkpoint",
    "open_database",
    "select",
    "write",
]
