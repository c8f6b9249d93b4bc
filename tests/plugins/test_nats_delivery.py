"""The NATS sink against real nats-server processes: everything lands in the stream once,
in order per domain, across a killed bridge and killed cluster nodes; the bucket holds every
domain's final state."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

from tests.support.bigtrace import build_trace, final_states
from tests.support.bridge import spawn, write_config
from tests.support.brokers import NatsCluster, NatsServer
from tests.support.jetstream import Stored, read_bucket, read_stream
from virtbridge import unescape_token
from virtbridge_nats import name_of_key


def sink(servers: str | list[str], **extra: object) -> dict[str, object]:
    return {
        "type": "nats",
        "servers": servers,
        "stream": "VIRTBRIDGE",
        "create_stream": True,
        "retry_max_interval": 1.0,
        **extra,
    }


def check_stream(messages: list[Stored], expected: int) -> None:
    """One message per event id, all of them, each domain's in sequence order."""
    ids = [m.headers["Nats-Msg-Id"] for m in messages]
    assert len(ids) == len(set(ids)), "an event is in the stream twice"
    sequences = [int(json.loads(m.data)["sequence"]) for m in messages]
    assert sorted(sequences) == list(range(1, expected + 1)), "an event is missing"
    per_domain: dict[str, list[int]] = defaultdict(list)
    for message, sequence in zip(messages, sequences, strict=True):
        per_domain[unescape_token(message.subject.split(".")[3])].append(sequence)
    assert all(values == sorted(values) for values in per_domain.values())


def check_bucket(servers: list[str], trace: Path, host: str) -> None:
    expected = final_states(trace)
    stored = read_bucket(servers, "virtbridge_state")
    states = {}
    for key, value in stored.items():
        key_host, _, key_name = key.partition(".")
        assert name_of_key(key_host) == host
        document = json.loads(value)
        assert name_of_key(key_name) == document["domain"]
        states[document["domain"]] = document
    assert set(states) == set(expected)
    for name, (state, reason, domain_id) in expected.items():
        got = states[name]
        assert (got["state"], got["reason"], got["id"]) == (state, reason, domain_id), name


def test_a_long_replay_lands_in_the_stream_once(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    _, total = build_trace(trace, 100_000, window=200)
    with NatsServer(tmp_path / "nats") as server:
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host="hv01",
            sources=[{"type": "replay", "path": str(trace), "progress": False}],
            sinks=[sink(server.url)],
        )
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=300)
        assert bridge.returncode == 0, err
        check_stream(read_stream([server.url], "VIRTBRIDGE"), total)
        check_bucket([server.url], trace, "hv01")


def test_a_killed_bridge_leaves_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    _, total = build_trace(trace, 60_000, window=100)
    with NatsServer(tmp_path / "nats") as server:
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host="hv01",
            sources=[{"type": "replay", "path": str(trace), "progress": False}],
            sinks=[sink(server.url)],
        )
        kills = 0
        for pause in (0.9, 1.5):
            bridge = spawn(config)
            time.sleep(pause)
            if bridge.poll() is None:
                bridge.send_signal(signal.SIGKILL)
                bridge.wait(30)
                kills += 1
        assert kills == 2, "the replay finished before it could be killed"
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=300)
        assert bridge.returncode == 0, err
        check_stream(read_stream([server.url], "VIRTBRIDGE"), total)
        check_bucket([server.url], trace, "hv01")


def replicas_current(node: NatsServer, stream: str) -> bool:
    """Whether every replica of ``stream`` has caught up, as ``node`` sees it."""
    report = node.monitor("/jsz?accounts=true&streams=true")
    for account in report.get("account_details") or []:  # type: ignore[union-attr]
        for detail in account.get("stream_detail") or []:
            if detail.get("name") != stream:
                continue
            cluster = detail.get("cluster") or {}
            replicas = cluster.get("replicas") or []
            return len(replicas) == 2 and all(r.get("current") for r in replicas)
    return False


def stream_leader(cluster: NatsCluster, stream: str) -> NatsServer | None:
    for node in cluster.nodes:
        if node.process is None:
            continue
        try:
            report = node.monitor("/jsz?accounts=true&streams=true")
        except OSError:
            continue
        for account in report.get("account_details") or []:  # type: ignore[union-attr]
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    leader = (detail.get("cluster") or {}).get("leader")
                    return next((n for n in cluster.nodes if n.name == leader), None)
    return None


def test_a_three_node_cluster_loses_nothing_when_nodes_die(tmp_path: Path) -> None:
    """An R3 stream; one node killed mid-stream and restarted, then the stream's leader
    (once every replica has caught up): nothing lost, no duplicate id, order per domain."""
    count = 4000
    with NatsCluster(tmp_path / "cluster") as cluster:
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host="hv01",
            sources=[
                {"type": "ticker", "count": count, "interval": 0.004, "domains": 9, "finish": True}
            ],
            sinks=[sink(cluster.urls, replicas=3, ack_timeout=2.0)],
        )
        bridge = spawn(config)
        try:
            time.sleep(3)
            victim = next(n for n in cluster.nodes if n is not stream_leader(cluster, "VIRTBRIDGE"))
            victim.kill()
            time.sleep(3)
            victim.start()
            deadline = time.monotonic() + 30
            leader = stream_leader(cluster, "VIRTBRIDGE")
            while time.monotonic() < deadline and not (
                leader is not None and replicas_current(leader, "VIRTBRIDGE")
            ):
                time.sleep(0.25)
                leader = stream_leader(cluster, "VIRTBRIDGE")
            assert leader is not None
            leader.kill()  # a leader election: publishes fail with no responders for a while
            time.sleep(8)
            leader.start()
            _, err = bridge.communicate(timeout=240)
        finally:
            if bridge.poll() is None:
                bridge.kill()
        assert bridge.returncode == 0, err
        print(err)
        # The election was felt: publishes failed and were sent again.
        assert "publish failed, will retry" in err, err
        cluster.wait_for_leader()
        messages = read_stream(cluster.urls, "VIRTBRIDGE")
        check_stream(messages, count + 2 * 9)


def test_core_nats_reaches_a_subscriber(tmp_path: Path) -> None:
    import asyncio

    import nats

    received: list[bytes] = []
    ready = threading.Event()
    stop = threading.Event()

    with NatsServer(tmp_path / "nats", jetstream=False) as server:

        def listen() -> None:
            async def run() -> None:
                nc = await nats.connect(server.url)

                async def got(msg: object) -> None:
                    received.append(msg.data)  # type: ignore[attr-defined]

                await nc.subscribe("virtbridge.>", cb=got)
                await nc.flush()
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)
                await nc.close()

            asyncio.run(run())

        listener = threading.Thread(target=listen)
        listener.start()
        ready.wait(10)
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host="hv01",
            sources=[{"type": "ticker", "count": 500, "interval": 0, "finish": True}],
            sinks=[{"type": "nats", "servers": server.url}],
        )
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=60)
        time.sleep(0.5)
        stop.set()
        listener.join(10)
        assert bridge.returncode == 0, err
    sequences = [int(json.loads(data)["sequence"]) for data in received]
    assert sequences == list(range(1, 503))
