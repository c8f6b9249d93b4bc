"""The real CLI as a subprocess: CloudEvents output, replay formats, the demo run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "examples" / "traces"


def virtbridge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "virtbridge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
        env={**os.environ, "COLUMNS": "100"},
    )


# CloudEvents 1.0 core rules (spec.md "Context Attributes"), checked here without the SDK.
REQUIRED = {"id": str, "source": str, "specversion": str, "type": str}
OPTIONAL = {"datacontenttype": str, "dataschema": str, "subject": str, "time": str}
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")


def assert_cloudevent(event: dict[str, object]) -> None:
    for name, kind in REQUIRED.items():
        assert isinstance(event.get(name), kind) and event[name], name
    assert event["specversion"] == "1.0"
    assert re.match(r"^[a-z][a-z0-9+.-]*:", str(event["source"])), "source is a URI-reference"
    for name, kind in OPTIONAL.items():
        if name in event:
            assert isinstance(event[name], kind) and event[name], name
    if "time" in event:  # RFC 3339
        datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
        assert str(event["time"]).endswith("Z")
    for name, value in event.items():
        if name not in REQUIRED and name not in OPTIONAL and name != "data":
            assert EXTENSION_NAME.match(name), f"extension attribute name {name!r}"
            assert isinstance(value, (str, int, bool))
    assert event.get("datacontenttype") == "application/json" and isinstance(event["data"], dict)


def test_replay_json_is_cloudevents() -> None:
    result = virtbridge("replay", str(TRACES / "*.jsonl"), "--format", "json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) > 100
    for event in events:
        assert_cloudevent(event)
    sequences = [int(event["sequence"]) for event in events]
    assert sequences == list(range(1, len(events) + 1))
    assert sorted(event["sequence"] for event in events) == [event["sequence"] for event in events]
    assert len({event["id"] for event in events}) == len(events)
    assert {event["source"] for event in events} == {events[0]["source"]}
    poweroff = [e["data"] for e in events if e["subject"] == "vm-poweroff"]
    assert [(d["event"], d["detail"], d["event_code"], d["detail_code"]) for d in poweroff] == [
        ("RESUMED", "UNPAUSED", 4, 0),
        ("STARTED", "BOOTED", 2, 0),
        ("SHUTDOWN", "GUEST", 6, 1),
        ("STOPPED", "SHUTDOWN", 5, 0),
    ]
    assert poweroff[2]["cause"]["data"] == {"guest": True, "reason": "guest-shutdown"}
    assert poweroff[2]["state"] == "SHUTDOWN" and poweroff[3]["reason"] == "SHUTDOWN"


def test_json_round_trips_to_the_same_events() -> None:
    from virtbridge import event_from_data
    from virtbridge.engine.engine import Engine
    from virtbridge.wire.trace import parse_line

    result = virtbridge("replay", str(TRACES / "save-restore.jsonl"), "--format", "json")
    wire = [json.loads(line) for line in result.stdout.splitlines()]
    engine = Engine()
    direct = []
    for line in (TRACES / "save-restore.jsonl").read_text().splitlines():
        signal = parse_line(line)
        if signal is not None:
            direct.extend(engine.feed(signal).events)
    assert [event_from_data(item["data"]) for item in wire] == direct


def test_strict_libvirt_hides_extensions() -> None:
    loose = virtbridge("replay", str(TRACES / "shutdown-ignored.jsonl"), "--format", "json")
    strict = virtbridge(
        "replay", str(TRACES / "shutdown-ignored.jsonl"), "--format", "json", "--strict-libvirt"
    )
    details = lambda out: [json.loads(line)["data"].get("detail") for line in out.splitlines()]  # noqa: E731
    assert "REQUESTED" in details(loose.stdout) and "IGNORED" in details(loose.stdout)
    assert "REQUESTED" not in details(strict.stdout) and "IGNORED" not in details(strict.stdout)
    assert all(not json.loads(line)["data"]["extension"] for line in strict.stdout.splitlines())


def test_a_broken_trace_line_is_reported_and_skipped(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    good = (TRACES / "poweroff.jsonl").read_text().splitlines()
    lines = [*good[:6], "{oops", '{"domain": "x", "signal": "boom"}', *good[6:]]
    trace.write_text("\n".join(lines) + "\n")
    result = virtbridge("replay", str(trace), "--format", "json")
    assert result.returncode == 0
    assert f"{trace}:7: not valid JSON" in result.stderr
    assert f"{trace}:8: unknown signal 'boom'" in result.stderr
    assert "2 lines could not be read and were skipped" in result.stderr
    clean = virtbridge("replay", str(TRACES / "poweroff.jsonl"), "--format", "json")
    strip = lambda out: [json.loads(x)["data"] for x in out.splitlines()]  # noqa: E731
    assert strip(result.stdout) == strip(clean.stdout)  # nothing else lost


def test_version_and_help() -> None:
    assert virtbridge("--version").stdout.startswith("virtbridge ")
    text = virtbridge("--help").stdout
    assert "examples:" in text and "virtbridge replay" in text


@pytest.mark.parametrize("command", ["plugins"])
def test_plugins_lists_builtins(command: str) -> None:
    result = virtbridge(command)
    assert result.returncode == 0
    for name in ("replay", "jsonl", "log", "null"):
        assert f"{name}: entry point virtbridge_{name}" in result.stdout
