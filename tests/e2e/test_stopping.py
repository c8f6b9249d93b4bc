"""Stopping, as a Unix tool and a service should: at once and quietly when the reader of its
output goes away (``| head``), within ``drain_timeout`` of the first SIGTERM whatever a sink
does, and at once on the second."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.bigtrace import build_trace
from tests.support.bridge import TESTKIT, child_env, spawn, write_config


@pytest.fixture(scope="module")
def big_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "big.jsonl"
    build_trace(path, 20_000)
    return path


@pytest.mark.parametrize("command", [["replay", "{trace}", "--format", "virsh"], ["run"]])
def test_a_closed_output_stops_it_quietly(big_trace: Path, command: list[str]) -> None:
    """``virtbridge replay big.jsonl | head -3`` and the demo ``virtbridge run | head -1``."""
    argv = [part.replace("{trace}", str(big_trace)) for part in command]
    process = subprocess.Popen(
        [sys.executable, "-m", "virtbridge", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()  # the reader goes away
    started = time.monotonic()
    try:
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert time.monotonic() - started < 5
    assert process.returncode == 0
    assert process.stderr.read() == b""


def stuck(tmp_path: Path, trace: Path, sink: dict[str, object]) -> subprocess.Popen[str]:
    config = write_config(
        tmp_path / "bridge.toml",
        state_dir=tmp_path / "state",
        outbox="memory",
        drain_timeout=1.0,
        sources=[{"type": "replay", "path": str(trace), "progress": False}],
        sinks=[{"type": "slow", "path": str(tmp_path / "out"), **sink}],
    )
    bridge = spawn(config)
    time.sleep(2.0)  # the replay is done; the bridge waits for its sink
    assert bridge.poll() is None
    return bridge


@pytest.mark.parametrize(
    "sink",
    [{"down_until": "/nonexistent/never", "retry_max_interval": 0.1}, {"hang": True}],
    ids=["failing", "hanging"],
)
def test_the_first_sigterm_stops_it_within_drain_timeout(
    tmp_path: Path, big_trace: Path, sink: dict[str, object]
) -> None:
    bridge = stuck(tmp_path, big_trace, sink)
    started = time.monotonic()
    bridge.send_signal(signal.SIGTERM)
    try:
        bridge.wait(timeout=15)
    finally:
        if bridge.poll() is None:
            bridge.kill()
    assert time.monotonic() - started < 1.0 + 2.0  # drain_timeout, and a margin
    assert bridge.returncode == 0


def test_the_second_sigterm_stops_it_at_once(tmp_path: Path, big_trace: Path) -> None:
    bridge = stuck(tmp_path, big_trace, {"hang": True})
    bridge.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    started = time.monotonic()
    bridge.send_signal(signal.SIGTERM)
    try:
        bridge.wait(timeout=15)
    finally:
        if bridge.poll() is None:
            bridge.kill()
    assert time.monotonic() - started < 0.8
    assert TESTKIT  # the slow sink comes from the test kit
