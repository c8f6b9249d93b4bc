"""The trace-file format: parsing, round trips and clear errors."""

from __future__ import annotations

import json

import pytest

from virtbridge import (
    EventID,
    Intent,
    IntentKind,
    LibvirtEvent,
    Lifecycle,
    LifecycleAction,
    MonitorEof,
    ObservedStatus,
    PolicyOverrides,
    ProcessExit,
    QmpEvent,
    Timer,
    Timestamp,
)
from virtbridge.engine.lifecycle import EventType, StoppedDetail
from virtbridge.engine.payloads import Watchdog, WatchdogAction
from virtbridge.engine.states import DomainState, ShutoffReason
from virtbridge.errors import TraceError
from virtbridge.wire.trace import parse_line, signal_to_object

STAMP = {"seconds": 1764100633, "microseconds": 983000}


def test_qmp_event_is_qemus_object_plus_domain() -> None:
    line = json.dumps(
        {
            "domain": "vm1",
            "event": "SHUTDOWN",
            "data": {"guest": True, "reason": "guest-shutdown"},
            "timestamp": STAMP,
        }
    )
    assert parse_line(line) == QmpEvent(
        domain="vm1",
        event="SHUTDOWN",
        data={"guest": True, "reason": "guest-shutdown"},
        timestamp=Timestamp(1764100633, 983000),
    )


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"domain": "a", "signal": "eof"}, MonitorEof(domain="a")),
        ({"domain": "a", "signal": "exit", "status": 0}, ProcessExit(domain="a", status=0)),
        (
            {"domain": "a", "signal": "exit", "signal_number": 9},
            ProcessExit(domain="a", signal_number=9),
        ),
        (
            {"domain": "a", "signal": "timer", "timestamp": STAMP},
            Timer(domain="a", timestamp=Timestamp(1764100633, 983000)),
        ),
        (
            {
                "domain": "a",
                "signal": "intent",
                "intent": "start",
                "on_crash": "restart",
                "shutdown_timeout": 5,
            },
            Intent(
                domain="a",
                intent=IntentKind.START,
                policy=PolicyOverrides(on_crash=LifecycleAction.RESTART, shutdown_timeout=5.0),
            ),
        ),
        (
            {"domain": "a", "signal": "intent", "intent": "restore", "paused": True, "uuid": "u"},
            Intent(domain="a", intent=IntentKind.RESTORE, paused=True, uuid="u"),
        ),
        (
            {
                "domain": "a",
                "signal": "status",
                "status": {"status": "paused", "running": False, "singlestep": False},
                "fresh": True,
            },
            ObservedStatus(domain="a", status="paused", running=False, fresh=True),
        ),
        (
            {
                "domain": "a",
                "signal": "libvirt",
                "event_id": "LIFECYCLE",
                "payload": {"event": "STOPPED", "detail": "DESTROYED"},
                "state": "SHUTOFF",
                "reason": "DESTROYED",
            },
            LibvirtEvent(
                domain="a",
                event_id=EventID.LIFECYCLE,
                payload=Lifecycle(EventType.STOPPED, StoppedDetail.DESTROYED),
                state=DomainState.SHUTOFF,
                reason=ShutoffReason.DESTROYED,
            ),
        ),
        (
            {
                "domain": "a",
                "signal": "libvirt",
                "event_id": 3,
                "payload": {"action": "pause"},
                "id": 4,
            },
            LibvirtEvent(
                domain="a", event_id=EventID.WATCHDOG, payload=Watchdog(WatchdogAction.PAUSE), id=4
            ),
        ),
    ],
)
def test_signals_parse_and_round_trip(obj: dict[str, object], expected: object) -> None:
    parsed = parse_line(json.dumps(obj))
    assert parsed == expected
    assert parse_line(json.dumps(signal_to_object(parsed))) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("line", ["", "   ", "# a comment", b"# bytes comment\n"])
def test_blank_and_comment_lines(line: str | bytes) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"event": "STOP"}', 'missing "domain"'),
        ('{"domain": "", "event": "STOP"}', 'missing "domain"'),
        ('{"domain": "a"}', 'needs "event"'),
        ('{"domain": "a", "event": "STOP", "data": [1]}', '"data" must be an object'),
        ('{"domain": "a", "event": 7}', '"event" must be a string'),
        ('{"domain": "a", "signal": "explode"}', "unknown signal 'explode'"),
        ('{"domain": "a", "signal": "intent", "intent": "fly"}', '"intent" must be one of'),
        (
            '{"domain": "a", "signal": "intent", "intent": "start", "on_crash": "explode"}',
            '"on_crash" must be one of',
        ),
        (
            '{"domain": "a", "signal": "intent", "intent": "start", "shutdown_timeout": "1s"}',
            "a number of seconds",
        ),
        ('{"domain": "a", "signal": "exit", "status": "zero"}', '"status" must be an integer'),
        ('{"domain": "a", "signal": "status", "status": "running"}', "query-status reply"),
        ('{"domain": "a", "signal": "timer", "timestamp": 5}', '"timestamp" must be'),
        (
            '{"domain": "a", "signal": "timer", "timestamp": {"seconds": 1, "microseconds": 2000000}}',
            '"timestamp" must be',
        ),
        ('{"domain": "a", "signal": "libvirt", "event_id": "NOPE"}', '"event_id" must be one of'),
        (
            '{"domain": "a", "signal": "libvirt", "event_id": "LIFECYCLE", "payload": {"event": "STOPPED", "detail": "NAPPING"}}',
            '"payload.detail"',
        ),
        (
            '{"domain": "a", "signal": "libvirt", "event_id": "RTC_CHANGE", "payload": {"utcoffset": "x"}}',
            "bad RTC_CHANGE payload",
        ),
    ],
)
def test_bad_lines_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(TraceError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_line(line)


def test_domain_names_are_data() -> None:
    for name in ["a/#", "x.>", "+", "with space", "ünïcode", "$SYS"]:
        signal = parse_line(json.dumps({"domain": name, "event": "STOP"}))
        assert signal is not None and signal.domain == name


def test_a_payload_inside_a_payload_round_trips_by_name_and_by_number() -> None:
    from virtbridge.engine.payloads import (
        Graphics,
        GraphicsAddress,
        GraphicsAddressFamily,
        GraphicsPhase,
    )

    graphics = Graphics(
        GraphicsPhase.CONNECT,
        GraphicsAddress(GraphicsAddressFamily.IPV6, "::1", "5900"),
        GraphicsAddress(GraphicsAddressFamily.UNIX, "/run/vnc", ""),
        "vnc",
        (("x509dname", "CN=me"),),
    )
    signal = LibvirtEvent(domain="vm1", event_id=EventID.GRAPHICS, payload=graphics)
    obj = signal_to_object(signal)
    assert obj["payload"]["local"]["family"] == "IPV6"  # type: ignore[index]
    assert parse_line(json.dumps(obj)) == signal
    obj["payload"]["remote"]["family"] = 2  # type: ignore[index]
    assert parse_line(json.dumps(obj)) == signal
    obj["payload"]["remote"]["family"] = "ETHER"  # type: ignore[index]
    with pytest.raises(TraceError, match=r'"payload\.remote\.family" must be one of IPV4, IPV6'):
        parse_line(json.dumps(obj))
