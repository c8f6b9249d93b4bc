"""``virtbridge tail mqtt://...`` from a second process: the retained states first, then the
live events, printed exactly as ``virtbridge replay`` prints the same events."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.bridge import ROOT, child_env, spawn, virtbridge, write_config
from tests.support.brokers import Mosquitto

TRACES = ROOT / "examples" / "traces"


def run_bridge(tmp_path: Path, name: str, url: str, trace: Path, **sink: object) -> None:
    config = write_config(
        tmp_path / f"{name}.toml",
        state_dir=tmp_path / name,
        host=name,
        sources=[{"type": "replay", "path": str(trace), "progress": False}],
        sinks=[{"type": "mqtt", "url": url, **sink}],
    )
    bridge = spawn(config)
    _, err = bridge.communicate(timeout=60)
    assert bridge.returncode == 0, err


def read_lines(process: subprocess.Popen[bytes], count: int, timeout: float) -> list[str]:
    """The first ``count`` lines the process prints (fewer if it takes longer than
    ``timeout``); the rest stays in the pipe."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 1)  # byte by byte: nothing beyond the lines is consumed
            if not chunk:
                break
            data += chunk
    return data.decode().splitlines()


@pytest.mark.parametrize(
    ("style", "content_mode"), [("python", "structured"), ("virsh", "structured"), ("c", "binary")]
)
def test_tail_shows_states_then_live_events(tmp_path: Path, style: str, content_mode: str) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        run_bridge(tmp_path, "hv01", broker.url(), TRACES / "suspend-resume.jsonl")
        live = TRACES / "acpi-shutdown.jsonl"
        expected = virtbridge("replay", str(live), "--format", style).stdout.splitlines()
        events = len(virtbridge("replay", str(live), "--format", "json").stdout.splitlines())
        tail = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "virtbridge",
                "tail",
                broker.url(),
                "--format",
                style,
                "--count",
                str(events),
                "--timeout",
                "60",
            ],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            first = read_lines(tail, 1, 15)
            assert first == (
                ["state of domain 'vm-suspend-resume': shutoff (destroyed)"]
                if style == "virsh"
                else ["Domain vm-suspend-resume(-1) state: shutoff (destroyed)"]
            )
            run_bridge(tmp_path, "hv02", broker.url(), live, content_mode=content_mode)
            out, err = tail.communicate(timeout=30)
        finally:
            if tail.poll() is None:
                tail.kill()
        assert tail.returncode == 0, err.decode()
        # Events print once each (the python and c printers print lifecycle events twice,
        # as libvirt's examples do), exactly as replay prints them.
        assert out.decode().splitlines() == expected


def test_tail_json_and_filters(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        run_bridge(tmp_path, "hv01", broker.url(), TRACES / "poweroff.jsonl")
        run_bridge(tmp_path, "hv02", broker.url(), TRACES / "destroy.jsonl")
        every = virtbridge("tail", broker.url(), "--format", "json", "--timeout", "1")
        hosts = sorted(json.loads(line)["host"] for line in every.stdout.splitlines())
        assert hosts == ["hv01", "hv02"], every.stderr
        one = virtbridge(
            "tail", broker.url(), "--host", "hv02", "--format", "json", "--timeout", "1"
        )
        assert [json.loads(line)["domain"] for line in one.stdout.splitlines()] == ["vm-destroy"]
        none = virtbridge("tail", broker.url(), "--no-states", "--timeout", "1")
        assert none.stdout == "" and none.returncode == 0
        history = virtbridge("tail", broker.url(), "--all", "--timeout", "1")
        assert history.returncode == 1
        assert "MQTT keeps no history" in history.stderr


def test_tail_errors_are_clear(tmp_path: Path) -> None:
    result = virtbridge("tail", "mqtt://127.0.0.1:1", "--timeout", "5")
    assert result.returncode == 1
    assert "cannot connect to 127.0.0.1:1: connection refused" in result.stderr
    assert "Traceback" not in result.stderr
    result = virtbridge("tail", "gopher://x", "--timeout", "1")
    assert result.returncode == 2 and "cannot read gopher:// URLs" in result.stderr
