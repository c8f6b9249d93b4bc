"""The wire format read back: every recorded event survives CloudEvent → Event, and the
published domain state says what the event says."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import virtbridge
from virtbridge import DomainStatus, Engine, Event, decode_cloudevent, parse_trace_line
from virtbridge.wire.cloudevents import parse_time

TRACES = Path(__file__).resolve().parents[2] / "examples" / "traces"


def recorded_events() -> list[Event]:
    events: list[Event] = []
    for path in sorted(TRACES.glob("*.jsonl")):
        engine = Engine()
        for line in path.read_text().splitlines():
            signal = parse_trace_line(line)
            if signal is not None:
                events += engine.feed(signal).events
    return events


def test_every_recorded_event_round_trips_through_a_cloudevent() -> None:
    events = recorded_events()
    assert len(events) > 150
    for sequence, event in enumerate(events, 1):
        envelope = virtbridge.cloudevent(
            event,
            event_id=f"bridge-{sequence}",
            sequence=sequence,
            source="virtbridge://hv01",
            attributes={"rack": "r7"},
        )
        raw = msgspec.json.encode(envelope)
        assert decode_cloudevent(raw).event == event
        assert Event.from_cloudevent(raw) == event  # the same, for consumers
        wire = decode_cloudevent(raw)
        assert (wire.id, wire.sequence, wire.host, wire.attributes) == (
            f"bridge-{sequence}",
            sequence,
            "hv01",
            {"rack": "r7"},
        )


def test_time_is_read_back_to_the_microsecond() -> None:
    stamp = virtbridge.Timestamp(1795640220, 7)
    assert parse_time(stamp.isoformat()) == stamp
    assert parse_time("2026-11-25T20:57:00.780658+00:00") == virtbridge.Timestamp(
        1795640220, 780658
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"specversion": "0.3"}',
        b'{"specversion": "1.0", "data": 3}',
        b'{"specversion": "1.0", "data": {"event_id": 0}}',
        b"\xff",
    ],
)
def test_anything_else_is_a_clear_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a"):
        decode_cloudevent(raw)
    with pytest.raises(ValueError, match="not a"):
        Event.from_cloudevent(raw)


def test_the_domain_status_follows_the_event() -> None:
    event = next(e for e in recorded_events() if e.lifecycle and e.state.name == "SHUTDOWN")
    status = DomainStatus.of(event, host="hv01", event_id="b-9", sequence=9)
    assert (status.state, status.reason, status.state_code) == (
        "SHUTDOWN",
        event.reason_enum.name,
        4,
    )
    assert status.event == "b-9" and status.sequence == "00000000000000000009"
    assert virtbridge.decode_status(msgspec.json.encode(status)) == status
    with pytest.raises(ValueError, match="not a virtbridge domain state"):
        virtbridge.decode_status(b'{"domain": 1}')
