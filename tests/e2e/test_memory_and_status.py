"""Memory stays flat while a sink is down for a million events; status and metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.bigtrace import build_trace
from tests.support.bridge import child_env

ROOT = Path(__file__).resolve().parents[2]
TESTKIT = "tests.plugins.testkit_plugin"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def spawn(config: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "virtbridge", "run", "-v", "-c", str(config), "--plugin", TESTKIT],
        cwd=cwd,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_rss_stays_flat_while_a_sink_is_down_for_a_million_events(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    _, total = build_trace(trace, 1_000_000)
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[bridge]\nstate_dir = "{tmp_path / "state"}"\ncontrol_socket = "off"\noutbox_window = 5000\ndrain_timeout = 1\n'
        f'[[sources]]\ntype = "replay"\npath = "{trace}"\nprogress = false\n'
        '[[sinks]]\ntype = "null"\n'
        f'[[sinks]]\ntype = "slow"\nname = "down"\npath = "{tmp_path / "never"}"\n'
        f'down_until = "{tmp_path / "never-up"}"\nretry_max_interval = 1.0\n'
    )
    process = spawn(config, tmp_path)
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + 400
    try:
        while process.poll() is None and time.monotonic() < deadline:
            samples.append((time.monotonic(), rss_kib(process.pid)))
            time.sleep(0.25)
        assert process.poll() is None or process.returncode == 0
        _, err = process.communicate(timeout=max(deadline - time.monotonic(), 30))
    finally:
        process.kill()
    assert process.returncode == 0, err[-2000:]
    assert f"sink 'null': delivered {total} of {total} events" in err
    assert len(samples) >= 8
    # After start-up (the first tenth of the run), resident memory stays within a few MB.
    start = samples[len(samples) // 10][1]
    peak = max(value for _, value in samples[len(samples) // 10 :])
    assert peak - start < 12 * 1024, f"RSS grew from {start} KiB to {peak} KiB"


def test_status_and_metrics_of_a_running_bridge(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[bridge]\nstate_dir = "{tmp_path / "state"}"\nmetrics = "127.0.0.1:0"\n'
        '[[sources]]\ntype = "ticker"\ninterval = 0.01\n'
        f'[[sinks]]\ntype = "slow"\nname = "ok"\npath = "{tmp_path / "ok"}"\n'
        f'[[sinks]]\ntype = "slow"\nname = "down"\npath = "{tmp_path / "down"}"\n'
        f'down_until = "{tmp_path / "up"}"\nretry_max_interval = 0.1\n'
    )
    process = spawn(config, tmp_path)

    def status() -> dict[str, object]:
        result = subprocess.run(
            [sys.executable, "-m", "virtbridge", "status", "-c", str(config), "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def get(port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                current = status()
            except (AssertionError, json.JSONDecodeError):
                continue
            if current["sinks"]["ok"]["cursor"] > 10:  # type: ignore[index]
                break
        sinks = current["sinks"]  # type: ignore[index]
        assert sinks["ok"]["connected"] is True and sinks["ok"]["lag"] < 5  # type: ignore[index]
        assert sinks["down"]["connected"] is False and sinks["down"]["retries"] >= 1  # type: ignore[index]
        assert "broker is down" in sinks["down"]["last_error"]  # type: ignore[index]
        assert sinks["down"]["lag"] > 10  # type: ignore[index]
        port = int(str(current["metrics"]).rsplit(":", 1)[1])
        assert get(port, "/healthz") == (200, "ok\n")
        code, body = get(port, "/readyz")
        assert code == 503 and "sink down is not connected" in body
        code, metrics = get(port, "/metrics")
        assert code == 200
        assert 'virtbridge_sink_connected{sink="down"} 0' in metrics
        assert 'virtbridge_sink_connected{sink="ok"} 1' in metrics
        assert "# TYPE virtbridge_sink_lag gauge" in metrics
        assert 'virtbridge_source_signals_total{source="ticker"}' in metrics
        (tmp_path / "up").touch()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and get(port, "/readyz")[0] != 200:
            time.sleep(0.1)
        assert get(port, "/readyz") == (200, "ready\n")
        text = subprocess.run(
            [sys.executable, "-m", "virtbridge", "status", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert "sink down: connected, cursor" in text and "source ticker: running" in text
    finally:
        process.terminate()
        process.communicate(timeout=30)
