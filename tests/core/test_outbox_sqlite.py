"""The durable outbox stores every kind of event and gives back exactly what went in."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
        back: list[object] = []
        cursor = 0
        while cursor < outbox.last_seq:
            batch = await outbox.read(cursor, 100)
            back.extend(batch)
            cursor = batch[-1].seq
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
