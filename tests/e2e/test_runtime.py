"""The running bridge: sinks independent of each other, clean stop with drain, SIGHUP reload."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.bridge import child_env
from virtbridge.config.load import load
from virtbridge.runtime.bridge import Bridge

ROOT = Path(__file__).resolve().parents[2]
TESTKIT = "tests.plugins.testkit_plugin"


def seqs(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [json.loads(line)["seq"] for line in path.read_text().splitlines()]


def test_a_hanging_sink_holds_back_nobody(tmp_path: Path) -> None:
    data = {
        "sources": [{"type": "ticker", "count": 300, "interval": 0}],
        "sinks": [
            {"type": "slow", "name": "hangs", "path": str(tmp_path / "hang"), "hang": True},
            {"type": "slow", "name": "flaky", "path": str(tmp_path / "flaky"), "fail_every": 3},
            {"type": "slow", "name": "fast", "path": str(tmp_path / "fast")},
        ],
        "bridge": {"drain_timeout": 0.5, "outbox": "memory", "control_socket": "off"},
    }

    async def scenario() -> Bridge:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            fast = bridge.workers.get("fast")
            if (
                fast
                and bridge.sources["ticker"].state == "done"
                and fast.cursor == bridge.outbox.last_seq
            ):
                break
        status = bridge.status()
        bridge.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        bridge.final_status = status  # type: ignore[attr-defined]
        return bridge

    bridge = asyncio.run(scenario())
    total = bridge.outbox.last_seq
    assert total == 302  # RESUMED, STARTED, 300 REBOOT
    assert seqs(tmp_path / "fast") == list(range(1, total + 1))
    assert seqs(tmp_path / "hang") == []
    status = bridge.final_status  # type: ignore[attr-defined]
    assert status["sinks"]["hangs"]["lag"] == total
    flaky = seqs(tmp_path / "flaky")
    assert flaky == list(range(1, len(flaky) + 1))  # in order, no gaps, despite retries
    assert status["sinks"]["flaky"]["retries"] >= 1
    assert "broker said no" in status["sinks"]["flaky"]["last_error"]


def spawn(config: Path, tmp_path: Path) -> subprocess.Popen[str]:
    env = child_env()
    return subprocess.Popen(
        [sys.executable, "-m", "virtbridge", "run", "-v", "-c", str(config), "--plugin", TESTKIT],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_sigterm_drains_in_flight_events_then_exits(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[bridge]\ndrain_timeout = 10\nstate_dir = "{tmp_path / "state"}"\n'
        '[[sources]]\ntype = "ticker"\ninterval = 0.0005\n'
        f'[[sinks]]\ntype = "slow"\npath = "{out}"\ndelay = 0.02\nbatch_size = 16\n'
    )
    process = spawn(config, tmp_path)
    try:
        wait_for(lambda: len(seqs(out)) > 50)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    delivered = seqs(out)
    assert delivered == list(range(1, len(delivered) + 1))
    assert "SIGTERM received: stopping" in err
    assert f"delivered {len(delivered)} of {len(delivered)} events" in err


def test_sighup_reloads_without_losing_events(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    config = tmp_path / "bridge.toml"
    base = (
        f'[bridge]\nstate_dir = "{tmp_path / "state"}"\n'
        '[[sources]]\ntype = "ticker"\ninterval = 0.002\n'
        f'[[sinks]]\ntype = "slow"\nname = "first"\npath = "{first}"\n'
    )
    config.write_text(base)
    process = spawn(config, tmp_path)
    try:
        wait_for(lambda: len(seqs(first)) > 20)
        config.write_text(base + f'[[sinks]]\ntype = "slow"\nname = "second"\npath = "{second}"\n')
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: len(seqs(second)) > 20)
        config.write_text("this is not TOML [")
        process.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        count = len(seqs(first))
        wait_for(lambda: len(seqs(first)) > count + 20)  # still running on the old config
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "configuration reloaded" in err
    assert "reload failed, keeping the running configuration" in err
    one = seqs(first)
    assert one == list(range(1, len(one) + 1))  # the unchanged sink lost nothing over reloads
    two = seqs(second)
    assert two == list(range(two[0], two[0] + len(two)))
