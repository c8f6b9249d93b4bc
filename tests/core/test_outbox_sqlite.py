"""The durable outbox stores every kind of event and gives back exactly what went in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from virtbridge import Engine, Event, LibvirtEvent
from virtbridge.outbox.sqlite import SqliteOutbox
from virtbridge.wire.trace import parse_line

TRACES = Path(__file__).resolve().parents[2] / "examples" / "traces"


def all_events() -> list[Event]:
    engine = Engine(monitor_events="all")
    events: list[Event] = []
    for path in sorted(TRACES.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            signal = parse_line(line)
            if signal is not None:
                events.extend(engine.feed(signal).events)
    # Events of every other kind, through the engine as hypervisor input.
    engine2 = Engine()
    from tests.core.scenario import signal

    for step in [
        "start",
        "RESUME",
        'VNC_CONNECTED {"server": {"host": "a", "service": "1", "family": "ipv4"}, "client": {"host": "b", "service": "2", "family": "ipv4"}}',
        'BLOCK_IO_ERROR {"device": "d", "action": "stop", "nospace": true}',
        'MEMORY_DEVICE_SIZE_CHANGE {"id": "m", "size": 4096}',
        'WATCHDOG {"action": "pause"}',
    ]:
        events.extend(engine2.feed(signal(step)).events)
    libvirt = parse_line(
        '{"domain": "lv", "signal": "libvirt", "event_id": "TUNABLE", "payload": {"params": {"cputune.vcpupin0": "0-1"}}, "id": 4}'
    )
    assert isinstance(libvirt, LibvirtEvent)
    events.extend(Engine().feed(libvirt).events)
    no_time = parse_line('{"domain": "t", "event": "SOMETHING_NEW"}')
    assert no_time is not None
    events.extend(Engine().feed(no_time).events)
    return events


async def read_all(outbox: SqliteOutbox, step: int) -> list[object]:
    """Everything in the outbox, read as a sink reads it, ``step`` records at a time."""
    back: list[object] = []
    cursor = 0
    while cursor < outbox.last_seq:
        batch = await outbox.read(cursor, step)
        back.extend(batch)
        cursor = batch[-1].seq
    return back


def test_round_trip_through_the_database(tmp_path: Path) -> None:
    events = all_events()
    assert len(events) > 300

    async def scenario() -> list[object]:
        outbox = SqliteOutbox(tmp_path / "o.sqlite3", window=1)
        await outbox.open()
        outbox.register_sink("s")
        stored = outbox.append(
            [(event, {"rack": "r1"} if i % 2 else None) for i, event in enumerate(events)]
        )
        await outbox.flush()
        back = await read_all(outbox, 100)
        await outbox.close()
        reopened = SqliteOutbox(tmp_path / "o.sqlite3", window=1)
        await reopened.open()
        again = await reopened.read(0, 10)
        assert again == stored[:10]
        assert reopened.bridge_id == outbox.bridge_id
        await reopened.close()
        return [stored, back]

    stored, back = asyncio.run(scenario())
    assert back == stored


def test_sinks_read_across_chunks_from_any_position(tmp_path: Path) -> None:
    """Events are stored a transaction at a time; a sink behind the memory window reads from
    any position, across chunk boundaries, exactly what was appended."""
    events = all_events()

    async def scenario() -> tuple[list[object], list[list[object]], int]:
        outbox = SqliteOutbox(tmp_path / "o.sqlite3", window=1)
        await outbox.open()
        outbox.register_sink("slow")
        stored: list[object] = []
        for start in range(0, len(events), 37):  # many transactions of uneven size
            stored.extend(outbox.append([(e, None) for e in events[start : start + 37]]))
            await outbox.flush()
        reads = []
        for after in (0, 1, 36, 37, 38, 100, len(events) - 1):
            reads.append(list(await outbox.read(after, 80)))
        chunks = outbox.status()["stored"]
        await outbox.close()
        return stored, reads, chunks

    stored, reads, count = asyncio.run(scenario())
    assert count == len(events)
    for after, got in zip((0, 1, 36, 37, 38, 100, len(events) - 1), reads, strict=True):
        assert got == stored[after : after + 80], after


def test_small_chunks_are_stored_uncompressed_and_every_form_reads_back(tmp_path: Path) -> None:
    """A live host's transaction (an event or two) is stored as it is, a replay's compressed;
    chunks of both kinds, and a small one compressed as earlier versions stored it, read back
    exactly, from the database and after reopening."""
    import sqlite3
    import zlib

    from virtbridge.outbox.codec import COMPRESS_FROM, RecordCodec

    events = all_events()
    sizes = [1, 2, 1, 60, 1, 3, 200]
    path = tmp_path / "o.sqlite3"

    async def scenario() -> list[object]:
        outbox = SqliteOutbox(path, window=1)
        await outbox.open()
        outbox.register_sink("s")
        stored: list[object] = []
        start = 0
        for size in sizes:
            stored.extend(outbox.append([(e, None) for e in events[start : start + size]]))
            start += size
            await outbox.flush()
        await outbox.close()
        return stored

    stored = asyncio.run(scenario())
    with sqlite3.connect(path) as db:
        bodies = [body for (body,) in db.execute("SELECT body FROM chunks ORDER BY last")]
        assert len(bodies) == len(sizes)
        compressed = [body[:1] == b"\x78" for body in bodies]
        assert compressed == [size >= 10 for size in sizes]  # (no small one reaches 1 KiB)
        assert all(
            len(body) < COMPRESS_FROM
            for body, packed in zip(bodies, compressed, strict=True)
            if not packed
        )
        # the first chunk as an earlier version stored it: compressed although small
        db.execute("UPDATE chunks SET body = ? WHERE last = 1", (zlib.compress(bodies[0], 1),))

    async def read_back() -> list[object]:
        outbox = SqliteOutbox(path, window=1)
        await outbox.open()
        back = await read_all(outbox, 7)
        await outbox.close()
        return back

    assert asyncio.run(read_back()) == stored
    codec = RecordCodec()
    assert codec.decode_chunk(1, codec.encode_chunk(stored[:1])) == stored[:1]


def test_memory_holds_only_what_a_sink_still_needs(tmp_path: Path) -> None:
    events = all_events()

    async def scenario() -> tuple[int, int, int]:
        outbox = SqliteOutbox(tmp_path / "o.sqlite3", window=100_000)
        await outbox.open()
        outbox.register_sink("fast")
        outbox.register_sink("slow")
        for _ in range(10):
            outbox.append([(e, None) for e in events])
        await outbox.flush()
        held_while_both_behind = outbox.status()["in_memory"]
        await outbox.commit("fast", outbox.last_seq)
        held_while_one_behind = outbox.status()["in_memory"]
        await outbox.commit("slow", outbox.last_seq)
        held_after = outbox.status()["in_memory"]
        await outbox.close()
        return held_while_both_behind, held_while_one_behind, held_after

    both, one, none = asyncio.run(scenario())
    assert both == one == 10 * len(events)
    assert none == 0


def test_a_version_1_database_is_converted_on_opening(tmp_path: Path) -> None:
    """Outboxes written with one row per event are read back unchanged after the upgrade."""
    import sqlite3

    from virtbridge.outbox.codec import RecordCodec
    from virtbridge.outbox.records import Record

    events = all_events()
    records = [Record(seq, f"old-{seq}", e) for seq, e in enumerate(events, start=5)]
    path = tmp_path / "o.sqlite3"
    codec = RecordCodec()
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);"
            "CREATE TABLE cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);"
        )
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("version", "1"), ("bridge_id", "old")])
        # two runs of contiguous events with a gap between them, as after compaction
        kept = records[:100] + records[150:]
        db.executemany("INSERT INTO events VALUES (?, ?)", [(r.seq, codec.encode(r)) for r in kept])
        db.execute("INSERT INTO cursors VALUES ('s', 0)")

    async def scenario() -> list[object]:
        outbox = SqliteOutbox(path, window=1)
        await outbox.open()
        assert outbox.bridge_id == "old" and outbox.last_seq == records[-1].seq
        back = await read_all(outbox, 64)
        await outbox.close()
        return back

    assert asyncio.run(scenario()) == kept
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert "events" not in tables and "chunks" in tables


def test_domain_records_survive_folding_and_reopening(tmp_path: Path) -> None:
    """The engine's records are logged a transaction at a time and folded into one row per
    domain, or written at once when a transaction touches few domains and nothing is logged:
    what is read back after reopening is each domain's newest record, forgotten domains gone,
    whatever the mix and wherever a compaction folded the log."""
    import virtbridge.outbox.sqlite as sqlite_outbox

    path = tmp_path / "o.sqlite3"
    many: dict[str, object] = {f"m{index}": {"state": index} for index in range(40)}
    steps: list[dict[str, object]] = [
        {"a": {"state": 1}, "b": {"state": 1}, "c": {"state": 1}},
        {**many, "a": {"state": 2}},  # many domains: logged, not written at once
        {"a": {"state": 3}, "b": None},  # few, after a logged one: logged too
        {"c": None, "m3": None},
        {"c": {"state": 5, "name": 'c "quoted" ü'}, "d": {"state": 1}},
        {"d": {"state": 2}, "m5": {"state": 55}},
    ]

    async def scenario(compact_after: int) -> dict[str, object]:
        outbox = SqliteOutbox(path, window=10)
        await outbox.open()
        for index, step in enumerate(steps):
            for name, record in step.items():
                outbox.save_domain(name, record)
            outbox.save_next_id(index + 2)  # something to commit with the records
            if index == compact_after:
                outbox._compacted_at = -1e9  # the next transaction compacts (and folds)
            await outbox.flush()
        await outbox.close()
        again = SqliteOutbox(path, window=10)
        await again.open()
        saved = dict(again.saved_domains)
        await again.close()
        return saved

    expected = {
        **{name: record for name, record in many.items() if name != "m3"},
        "m5": {"state": 55},
        "a": {"state": 3},
        "c": {"state": 5, "name": 'c "quoted" ü'},
        "d": {"state": 2},
    }
    direct = sqlite_outbox.DIRECT_DOMAINS
    try:
        for sqlite_outbox.DIRECT_DOMAINS in (direct, 0, 1000):  # mixed, always logged, never
            for compact_after in (-1, 0, 1, 2, 3, 5):
                path.unlink(missing_ok=True)
                got = asyncio.run(scenario(compact_after))
                assert got == expected, (sqlite_outbox.DIRECT_DOMAINS, compact_after)
    finally:
        sqlite_outbox.DIRECT_DOMAINS = direct


def test_a_sinks_cursor_rides_with_the_next_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live host: events one by one, each acknowledged at once.  The cursor waits for the
    next event's transaction instead of costing one of its own, as long as events keep
    coming within CURSOR_DELAY; once they stop it is stored on its own, and survives."""
    import time

    import virtbridge.outbox.sqlite as sqlite_outbox

    events = all_events()[:40]
    transactions: list[tuple[float, int]] = []  # (when, events in it)
    write = sqlite_outbox.write

    def counted(db: object, batch: Any, *args: Any) -> None:
        transactions.append((time.monotonic(), len(batch.records)))
        write(db, batch, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_outbox, "write", counted)

    async def scenario() -> tuple[list[float], int]:
        outbox = SqliteOutbox(tmp_path / "o.sqlite3")
        await outbox.open()
        outbox.register_sink("s")
        transactions.clear()

        async def sink() -> None:
            seq = 0
            while seq < len(events):
                await outbox.wait_beyond(seq)
                seq = outbox.durable_seq
                await outbox.commit("s", seq)

        acknowledging = asyncio.create_task(sink())
        appended = []
        for event in events:
            outbox.append([(event, None)])
            appended.append(time.monotonic())
            outbox.store_now()
            await asyncio.sleep(0.0005)
        await asyncio.wait_for(acknowledging, 5)
        await outbox.close()
        again = SqliteOutbox(tmp_path / "o.sqlite3")
        await again.open()
        cursor = again.cursor("s")
        await again.close()
        return appended, cursor

    appended, cursor = asyncio.run(scenario())
    assert cursor == len(events)
    assert sum(count for _, count in transactions) == len(events)
    alone = [when for when, count in transactions if count == 0]
    # A cursor is stored alone only when no event came for CURSOR_DELAY before (a pause,
    # on a slow machine; and after the last event).
    for when in alone:
        before = [at for at in appended if at <= when]
        assert not before or when - before[-1] >= sqlite_outbox.CURSOR_DELAY, when - before[-1]
    assert alone and alone[-1] >= appended[-1]
