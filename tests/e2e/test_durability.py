"""Durable, ordered, at-least-once delivery through the SQLite outbox."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.bigtrace import build_trace
from tests.support.bridge import child_env
from virtbridge.config.load import load
from virtbridge.runtime.bridge import Bridge

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "examples" / "traces"
TESTKIT = "tests.plugins.testkit_plugin"


def lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def spawn(config: Path, cwd: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "virtbridge", "run", "-c", str(config), "--plugin", TESTKIT, *extra],
        cwd=cwd,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    _, expected_events = build_trace(trace, 200_000)
    out = tmp_path / "out.jsonl"
    batch = 200
    config = tmp_path / "bridge.toml"
    config.write_text(
        f'[bridge]\nstate_dir = "{tmp_path / "state"}"\ncontrol_socket = "off"\n'
        f'[[sources]]\ntype = "replay"\npath = "{trace}"\nprogress = false\n'
        f'[[sinks]]\ntype = "slow"\npath = "{out}"\ndelay = 0.004\nbatch_size = {batch}\n'
    )
    rng = random.Random(20261125)
    kills = 0
    deadline = time.monotonic() + 240
    while kills < 6 and time.monotonic() < deadline:
        process = spawn(config, tmp_path)
        time.sleep(rng.uniform(0.4, 1.6))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        kills += 1
    assert kills >= 5, "the run finished before it could be killed five times"
    final = spawn(config, tmp_path)
    _, err = final.communicate(timeout=max(deadline - time.monotonic(), 60))
    assert final.returncode == 0, err

    delivered = lines(out)
    seqs = [int(item["seq"]) for item in delivered]  # type: ignore[call-overload]
    assert set(seqs) == set(range(1, expected_events + 1)), "an event was lost"
    ids = {item["seq"]: item["id"] for item in delivered}
    assert len(set(ids.values())) == expected_events  # one stable id per event, across restarts
    # Duplicates: only re-deliveries of the batch that was in flight when the bridge died.
    runs: list[int] = []
    highest = 0
    for seq in seqs:
        if seq <= highest:
            if not runs or runs[-1] < 0:
                runs.append(0)
            runs[-1] += 1
        else:
            if runs and runs[-1] > 0:
                runs[-1] = -runs[-1]  # close the run
            highest = seq
    runs = [abs(run) for run in runs]
    assert len(runs) <= kills
    assert all(run <= batch for run in runs), runs
    # In order per domain: first deliveries of a domain's events come in sequence order.
    per_domain: dict[str, list[int]] = defaultdict(list)
    seen: set[int] = set()
    for item in delivered:
        seq = int(item["seq"])  # type: ignore[call-overload]
        if seq not in seen:
            seen.add(seq)
            per_domain[str(item["domain"])].append(seq)
    assert all(values == sorted(values) for values in per_domain.values())


def bridge_config(
    tmp_path: Path, sinks: list[dict[str, object]], sources: list[dict[str, object]]
) -> dict[str, object]:
    return {
        "bridge": {
            "state_dir": str(tmp_path / "state"),
            "control_socket": "off",
            "drain_timeout": 0.5,
        },
        "sources": sources,
        "sinks": sinks,
    }


def test_a_down_a_flaky_and_a_hanging_sink_beside_a_fast_one(tmp_path: Path) -> None:
    flag = tmp_path / "broker-up"
    files = {name: tmp_path / name for name in ("down", "flaky", "hangs", "fast")}
    data = bridge_config(
        tmp_path,
        sinks=[
            {
                "type": "slow",
                "name": "down",
                "path": str(files["down"]),
                "down_until": str(flag),
                "retry_max_interval": 0.2,
            },
            {
                "type": "slow",
                "name": "flaky",
                "path": str(files["flaky"]),
                "fail_every": 10,
                "retry_max_interval": 0.05,
            },
            {"type": "slow", "name": "hangs", "path": str(files["hangs"]), "hang": True},
            {"type": "slow", "name": "fast", "path": str(files["fast"]), "batch_size": 256},
        ],
        sources=[{"type": "ticker", "count": 4000, "interval": 0}],
    )

    async def scenario() -> tuple[Bridge, dict[str, object]]:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        total = 4002
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # first half: the broker of "down" is down
            await asyncio.sleep(0.05)
            fast = bridge.workers.get("fast")
            if fast is not None and fast.cursor == total:
                break
        during = bridge.status()
        flag.touch()  # the broker comes back
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if all(bridge.workers[name].cursor == total for name in ("down", "flaky")):
                break
        bridge.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        return bridge, during

    bridge, during = asyncio.run(scenario())
    total = bridge.outbox.last_seq
    assert total == 4002
    everything = list(range(1, total + 1))
    # While "down" was down and "hangs" hung, "fast" got everything.
    assert during["sinks"]["fast"]["lag"] == 0  # type: ignore[index]
    assert during["sinks"]["down"]["connected"] is False  # type: ignore[index]
    assert during["sinks"]["down"]["cursor"] == 0  # type: ignore[index]
    assert [item["seq"] for item in lines(files["fast"])] == everything
    # The failing ones caught up, in order, without gaps.
    assert [item["seq"] for item in lines(files["down"])] == everything
    assert [item["seq"] for item in lines(files["flaky"])] == everything
    assert lines(files["hangs"]) == []


def test_restart_restores_the_engine_and_resumes_every_sink(tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    first.write_text(
        '{"domain": "vm1", "signal": "intent", "intent": "define"}\n'
        '{"domain": "vm1", "signal": "intent", "intent": "start"}\n'
        '{"domain": "vm1", "event": "RESUME"}\n'
    )
    second = tmp_path / "second.jsonl"
    second.write_text(
        # after the restart, the source resynchronises: no event (the engine knew vm1 ran)
        '{"domain": "vm1", "signal": "status", "status": {"status": "running", "running": true}}\n'
        '{"domain": "vm1", "signal": "intent", "intent": "define"}\n'
        '{"domain": "vm2", "signal": "intent", "intent": "start"}\n'
        '{"domain": "vm2", "event": "RESUME"}\n'
        '{"domain": "vm1", "event": "SHUTDOWN", "data": {"guest": true}}\n'
        '{"domain": "vm1", "signal": "eof"}\n'
    )
    out = tmp_path / "out"

    def run(trace: Path) -> None:
        data = bridge_config(
            tmp_path,
            sinks=[{"type": "slow", "path": str(out)}],
            sources=[{"type": "replay", "path": str(trace), "name": f"replay-{trace.stem}"}],
        )
        assert (
            asyncio.run(
                Bridge(load(None, data=data, extra_plugins=[TESTKIT])).run(handle_signals=False)
            )
            == 0
        )

    run(first)
    assert [item["seq"] for item in lines(out)] == [1, 2, 3]
    run(first)  # the replay already reached the end of this file: nothing again
    assert [item["seq"] for item in lines(out)] == [1, 2, 3]

    data = bridge_config(
        tmp_path,
        sinks=[{"type": "jsonl", "path": str(tmp_path / "ce.jsonl")}],
        sources=[{"type": "replay", "path": str(second)}],
    )
    assert asyncio.run(Bridge(load(None, data=data)).run(handle_signals=False)) == 0
    events = [item["data"] for item in lines(tmp_path / "ce.jsonl")]  # type: ignore[index]
    assert [(e["domain"], e["id"], e.get("event"), e.get("detail")) for e in events] == [  # type: ignore[index]
        ("vm1", 1, "DEFINED", "UPDATED"),  # the definition survived the restart
        ("vm2", 2, "RESUMED", "UNPAUSED"),  # the next domain ID survived too
        ("vm2", 2, "STARTED", "BOOTED"),
        ("vm1", 1, "SHUTDOWN", "GUEST"),
        ("vm1", 1, "STOPPED", "SHUTDOWN"),
    ]
    assert [e["sequence"] for e in lines(tmp_path / "ce.jsonl")] == [
        f"{n:020d}" for n in range(4, 9)
    ]


def test_a_full_disk_is_reported_and_the_bridge_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    flag = tmp_path / "up"  # the sink is down at first, so the outbox has to grow
    data = bridge_config(
        tmp_path,
        sinks=[
            {"type": "slow", "path": str(out), "down_until": str(flag), "retry_max_interval": 0.05}
        ],
        sources=[{"type": "ticker", "count": 3000, "interval": 0.0002}],
    )

    async def scenario() -> tuple[dict[str, object], dict[str, object], Bridge]:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        while not hasattr(bridge.outbox, "_db") or bridge.outbox._db is None:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        outbox = bridge.outbox
        pages = await outbox._run(lambda: outbox._db.execute("PRAGMA page_count").fetchone()[0])  # type: ignore[attr-defined]
        await outbox._run(lambda: outbox._db.execute(f"PRAGMA max_page_count = {pages + 2}"))  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not outbox.status().get("degraded"):
            await asyncio.sleep(0.01)
        full = bridge.status()
        await asyncio.sleep(0.3)
        still = bridge.status()
        await outbox._run(lambda: outbox._db.execute("PRAGMA max_page_count = 1073741823"))  # type: ignore[attr-defined]
        flag.touch()
        while time.monotonic() < deadline and (
            bridge.sources["ticker"].state != "done" or bridge.status()["outbox"]["degraded"]
        ):  # type: ignore[index]
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        bridge.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        return full, still, bridge

    full, still, bridge = asyncio.run(scenario())
    assert full["outbox"]["degraded"] is True  # type: ignore[index]
    assert "full" in full["outbox"]["error"]  # type: ignore[index]
    assert still["sources"]["ticker"]["signals"] > full["sources"]["ticker"]["signals"]  # type: ignore[index]
    assert any("cannot store events" in r.getMessage() for r in caplog.records)
    assert any("writable again" in r.getMessage() for r in caplog.records)
    assert [item["seq"] for item in lines(out)] == list(range(1, bridge.outbox.last_seq + 1))


def test_overflow_drop_oldest_and_dead_letters(tmp_path: Path) -> None:
    flag = tmp_path / "up"
    data = bridge_config(
        tmp_path,
        sinks=[
            {
                "type": "slow",
                "name": "lossy",
                "path": str(tmp_path / "lossy"),
                "down_until": str(flag),
                "overflow": "drop-oldest",
                "max_lag": 100,
                "retry_max_interval": 0.05,
                "batch_size": 10,
            },
            {
                "type": "slow",
                "name": "picky",
                "path": str(tmp_path / "picky"),
                "reject_kind": "reboot",
            },
        ],
        sources=[{"type": "ticker", "count": 1000, "interval": 0}],
    )

    async def scenario() -> Bridge:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline and bridge.sources.get("ticker") is None
        ) or bridge.sources["ticker"].state != "done":
            await asyncio.sleep(0.02)
        flag.touch()
        while (
            time.monotonic() < deadline and bridge.workers["lossy"].cursor < bridge.outbox.last_seq
        ):
            await asyncio.sleep(0.02)
        bridge.workers_status = bridge.status()["sinks"]  # type: ignore[attr-defined]
        bridge.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        return bridge

    bridge = asyncio.run(scenario())
    total = bridge.outbox.last_seq
    lossy = [item["seq"] for item in lines(tmp_path / "lossy")]
    # At most its newest max_lag events, plus the batch that was in flight when it came back.
    assert lossy == sorted(lossy) and lossy[-1] == total
    assert lossy[-100:] == list(range(total - 99, total + 1))
    assert len(lossy) <= 100 + 10
    assert bridge.workers_status["lossy"]["dropped"] == total - len(lossy)  # type: ignore[attr-defined]
    picky = [item["seq"] for item in lines(tmp_path / "picky")]
    assert picky == [1, 2]  # RESUMED and STARTED; every REBOOT was refused
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "virtbridge",
            "dead-letters",
            "--state-dir",
            str(tmp_path / "state"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    dead = [json.loads(line) for line in result.stdout.splitlines()]
    assert [item["seq"] for item in dead] == list(range(3, total + 1))
    assert {item["sink"] for item in dead} == {"picky"}
    assert "reboot events are not welcome" in dead[0]["error"]


def test_a_replay_waits_for_a_slow_sink_but_not_for_a_stuck_one(tmp_path: Path) -> None:
    """A replay goes no faster than its slowest sink that delivers: it never runs more than
    a bounded stretch ahead of it (memory stays bounded, the sink reads from memory).  A sink
    that hangs holds nothing up: the replay is stored in full and the others get it all."""
    from virtbridge.runtime.workers import PACE

    trace = tmp_path / "trace.jsonl"
    _, expected = build_trace(trace, 30_000)
    batch = 256
    files = {name: tmp_path / name for name in ("slow", "hangs")}
    data = bridge_config(
        tmp_path,
        sinks=[
            {
                "type": "slow",
                "name": "slow",
                "path": str(files["slow"]),
                "delay": 0.002,
                "batch_size": batch,
            },
            {"type": "slow", "name": "hangs", "path": str(files["hangs"]), "hang": True},
        ],
        sources=[{"type": "replay", "path": str(trace), "progress": False}],
    )

    async def scenario() -> tuple[Bridge, int, int]:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        ahead = stuck = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.003)
            slow, hangs = bridge.workers.get("slow"), bridge.workers.get("hangs")
            if slow is not None and bridge.outbox.last_seq < expected:
                ahead = max(ahead, bridge.outbox.last_seq - slow.cursor)
            if hangs is not None:
                stuck = max(stuck, hangs.cursor)
        assert await asyncio.wait_for(task, 30) == 0
        return bridge, ahead, stuck

    bridge, ahead, stuck_cursor = asyncio.run(scenario())
    assert bridge.outbox.last_seq == expected
    assert [item["seq"] for item in lines(files["slow"])] == list(range(1, expected + 1))
    # The slow sink needed several seconds: unpaced, the replay would have been tens of
    # thousands of events ahead of it.  Paced: PACE, plus what one replay batch makes.
    assert 0 < ahead <= PACE + most_events_of_one_replay_batch(trace) + batch, ahead
    assert stuck_cursor == 0 and lines(files["hangs"]) == []


def most_events_of_one_replay_batch(trace: Path) -> int:
    """The most events the engine makes of the lines the replay source feeds it at once."""
    from virtbridge import Engine, parse_trace_line
    from virtbridge_replay._source import BATCH

    engine = Engine()
    lines = trace.read_text().splitlines()
    most = 0
    for start in range(0, len(lines), BATCH):
        signals = [parse_trace_line(line) for line in lines[start : start + BATCH]]
        most = max(most, sum(len(engine.feed(s).events) for s in signals if s is not None))
    return most
