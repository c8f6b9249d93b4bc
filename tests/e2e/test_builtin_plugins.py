"""The log sink, ``check --connect``, replay speed and its progress bar."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from virtbridge.config.load import load
from virtbridge.runtime.bridge import Bridge

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "examples" / "traces"


def run(data: dict[str, object]) -> Bridge:
    settings = {"control_socket": "off", "outbox": "memory"}
    bridge = Bridge(load(None, data={"bridge": settings, **data}))
    assert asyncio.run(bridge.run(handle_signals=False)) == 0
    return bridge


def test_log_sink_human_and_json(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="virtbridge.events")
    run(
        {
            "sources": [{"type": "replay", "path": str(TRACES / "poweroff.jsonl")}],
            "sinks": [
                {"type": "log", "name": "human"},
                {
                    "type": "log",
                    "name": "json",
                    "format": "json",
                    "logger": "virtbridge.events.json",
                },
            ],
        }
    )
    human = [r.getMessage() for r in caplog.records if r.name == "virtbridge.events"]
    assert human == [
        "#1 vm-poweroff(1) LIFECYCLE RESUMED/UNPAUSED -> RUNNING/BOOTED",
        "#2 vm-poweroff(1) LIFECYCLE STARTED/BOOTED -> RUNNING/BOOTED",
        "#3 vm-poweroff(1) LIFECYCLE SHUTDOWN/GUEST -> SHUTDOWN/UNKNOWN",
        "#4 vm-poweroff(1) LIFECYCLE STOPPED/SHUTDOWN -> SHUTOFF/SHUTDOWN",
    ]
    as_json = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "virtbridge.events.json"
    ]
    assert [e["data"]["event"] for e in as_json] == ["RESUMED", "STARTED", "SHUTDOWN", "STOPPED"]
    assert all(e["specversion"] == "1.0" for e in as_json)


def test_check_connect_tries_every_component(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        f'[[sources]]\ntype = "replay"\npath = "{TRACES / "poweroff.jsonl"}"\n'
        f'[[sinks]]\ntype = "jsonl"\npath = "{tmp_path / "out.jsonl"}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "virtbridge", "check", "-c", str(good), "--connect"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "source 'replay': 1 trace files" in result.stdout
    assert f"sink 'jsonl': writes to {tmp_path / 'out.jsonl'}" in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sinks]]\ntype = "jsonl"\npath = "/proc/nope/out.jsonl"\n')
    result = subprocess.run(
        [sys.executable, "-m", "virtbridge", "check", "-c", str(bad), "--connect"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "sink 'jsonl': FAILED: cannot write to /proc/nope" in result.stdout


def test_replay_at_recorded_speed_takes_the_recorded_time(tmp_path: Path) -> None:
    trace = TRACES / "shutdown-ignored.jsonl"  # its lines span about 0.6 s of QEMU time
    stamps = [
        json.loads(line)["timestamp"]
        for line in trace.read_text().splitlines()
        if line.startswith("{")
    ]
    span = (stamps[-1]["seconds"] + stamps[-1]["microseconds"] / 1e6) - (
        stamps[0]["seconds"] + stamps[0]["microseconds"] / 1e6
    )
    assert span > 0.5
    started = time.monotonic()
    fast = run({"sources": [{"type": "replay", "path": str(trace)}], "sinks": [{"type": "null"}]})
    fast_time = time.monotonic() - started
    started = time.monotonic()
    slow = run(
        {
            "sources": [{"type": "replay", "path": str(trace), "speed": 2.0}],
            "sinks": [{"type": "null"}],
        }
    )
    slow_time = time.monotonic() - started
    assert slow_time >= span / 2 * 0.9  # never faster than asked
    assert fast.outbox.last_seq == slow.outbox.last_seq
    assert fast_time < slow_time


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        f'[bridge]\ncontrol_socket = "off"\noutbox = "memory"\n[[sources]]\ntype = "replay"\npath = "{TRACES / "*.jsonl"}"\n'
        '[[sinks]]\ntype = "null"\n'
    )
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "virtbridge", "run", "-c", str(tmp_path / "c.toml")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        cwd=tmp_path,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=60)
    os.close(leader)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "replay [" in text and "100.0%" in text and "lines" in text
