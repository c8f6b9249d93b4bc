"""The MQTT sink against real mosquitto processes: everything arrives, in order per domain,
across broker restarts, network cuts and a killed bridge; retained states are right."""

from __future__ import annotations

import json
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.bigtrace import build_trace, final_states
from tests.support.bridge import spawn, write_config
from tests.support.brokers import Mosquitto, proxied
from tests.support.subscriber import Message, Subscriber, retained
from virtbridge import unescape_token


def events_of(messages: list[Message]) -> list[dict[str, object]]:
    """The CloudEvents among the messages (not states, not the status), in arrival order."""
    out = []
    for message in messages:
        levels = message.topic.split("/")
        if len(levels) == 5 and levels[2] == "domain" and levels[4] != "state":
            out.append(json.loads(message.payload))
    return out


def check_complete(events: list[dict[str, object]], expected: int) -> None:
    """Every event once or more, by id; the first copies of each domain's events in order."""
    sequences = [int(str(event["sequence"])) for event in events]
    assert set(sequences) == set(range(1, expected + 1)), (
        f"missing: {sorted(set(range(1, expected + 1)) - set(sequences))[:20]}"
    )
    ids = {event["sequence"]: event["id"] for event in events}
    assert len(set(ids.values())) == expected  # one id per event
    first: dict[str, list[int]] = defaultdict(list)
    seen: set[int] = set()
    for event, sequence in zip(events, sequences, strict=True):
        if sequence not in seen:
            seen.add(sequence)
            first[str(event["subject"])].append(sequence)
    assert all(values == sorted(values) for values in first.values())


def check_states(port: int, trace: Path, host: str) -> None:
    expected = final_states(trace)
    states = {
        unescape_token(topic.split("/")[3]): json.loads(payload)
        for topic, payload in retained(port, f"virtbridge/{host}/domain/+/state").items()
        if payload
    }
    assert set(states) == set(expected)
    for name, (state, reason, domain_id) in expected.items():
        got = states[name]
        assert (got["state"], got["reason"], got["id"]) == (state, reason, domain_id), name
        assert got["domain"] == name and got["host"] == host
        assert got["event"].endswith(f"-{int(got['sequence'])}")


def sink(url: str, **extra: object) -> dict[str, object]:
    return {"type": "mqtt", "url": url, "reconnect_max": 1.0, **extra}


@pytest.mark.parametrize("qos", [1, 2])
def test_a_long_replay_arrives_complete_and_in_order(tmp_path: Path, qos: int) -> None:
    trace = tmp_path / "trace.jsonl"
    _, total = build_trace(trace, 100_000, window=200)
    with (
        Mosquitto(tmp_path / "broker") as broker,
        Subscriber(broker.port, ["virtbridge/+/domain/+/+"], qos=qos) as subscriber,
    ):
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host="hv01",
            sources=[{"type": "replay", "path": str(trace), "progress": False}],
            sinks=[sink(broker.url(), qos=qos)],
        )
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=240)
        assert bridge.returncode == 0, err
        messages = subscriber.wait_for(lambda m: len(events_of(m)) >= total, 60)
        check_complete(events_of(messages), total)
        check_states(broker.port, trace, "hv01")


def test_broker_restarts_and_a_network_cut_lose_nothing(tmp_path: Path) -> None:
    """The broker is stopped and started three times while events flow, and the bridge is
    cut off from it once: nothing is lost, and the status topic says offline (the last will)
    while the bridge is cut off, online after."""
    count = 6000
    with Mosquitto(tmp_path / "broker") as broker, proxied(broker.port) as proxy:
        subscriber = Subscriber(
            broker.port,
            ["virtbridge/+/domain/+/+", "virtbridge/+/status"],
            persistent=True,
            client_id="restart-watcher",
        ).start()
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host="hv01",
            sources=[
                {"type": "ticker", "count": count, "interval": 0.002, "domains": 7, "finish": True}
            ],
            sinks=[sink(f"mqtt://127.0.0.1:{proxy.port}", keepalive=5)],
        )
        bridge = spawn(config)
        try:
            for _ in range(3):
                time.sleep(1.2)
                broker.restart(down=0.7)
                subscriber.connected.wait(10)
            time.sleep(1.0)
            proxy.cut()
            statuses = subscriber.wait_for(
                lambda m: any(x.topic.endswith("/status") and x.payload == b"offline" for x in m),
                10,
            )
            assert any(m.payload == b"offline" for m in statuses if m.topic.endswith("/status"))
            cut_at = len(statuses)
            time.sleep(1.0)
            proxy.restore()
            after = subscriber.wait_for(
                lambda m: any(
                    x.topic.endswith("/status") and x.payload == b"online" for x in m[cut_at:]
                ),
                15,
            )
            assert any(
                m.payload == b"online" for m in after[cut_at:] if m.topic.endswith("/status")
            )
            _, err = bridge.communicate(timeout=180)
            assert bridge.returncode == 0, err
        finally:
            if bridge.poll() is None:
                bridge.kill()
        expected = final_count(tmp_path)
        messages = subscriber.wait_for(
            lambda m: len({e["id"] for e in events_of(m)}) >= expected, 30
        )
        subscriber.stop()
        check_complete(events_of(messages), expected)


def final_count(tmp_path: Path) -> int:
    """How many events the bridge stored (the outbox numbers them 1..N)."""
    import sqlite3

    with sqlite3.connect(tmp_path / "state" / "outbox.sqlite3") as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        newest = db.execute("SELECT MAX(last) FROM chunks").fetchone()[0] or 0
    return max(int(row[0]) if row else 0, newest)


def test_a_killed_bridge_loses_nothing(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    _, total = build_trace(trace, 60_000, window=100)
    with (
        Mosquitto(tmp_path / "broker") as broker,
        Subscriber(broker.port, ["virtbridge/+/domain/+/+"]) as subscriber,
    ):
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host="hv01",
            sources=[{"type": "replay", "path": str(trace), "progress": False}],
            sinks=[sink(broker.url(), protocol="3.1.1")],
        )
        kills = 0
        for pause in (0.8, 1.4):
            bridge = spawn(config)
            time.sleep(pause)
            if bridge.poll() is None:
                bridge.send_signal(signal.SIGKILL)
                bridge.wait(30)
                kills += 1
        assert kills == 2, "the replay finished before it could be killed"
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=180)
        assert bridge.returncode == 0, err
        messages = subscriber.wait_for(lambda m: len({e["id"] for e in events_of(m)}) >= total, 60)
        check_complete(events_of(messages), total)
        check_states(broker.port, trace, "hv01")
