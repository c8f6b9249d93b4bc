"""Hostile names on a real nats-server, the key-value key rule, and ``virtbridge tail
nats://...`` from a second process (one tail for several bridges in a cluster)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.plugins.test_mqtt_tail import read_lines
from tests.plugins.test_mqtt_topics import HOSTILE, HOSTILE_HOST, renamed
from tests.support.bridge import ROOT, child_env, spawn, virtbridge, write_config
from tests.support.brokers import NatsCluster, NatsServer
from tests.support.jetstream import read_bucket, read_stream
from virtbridge import unescape_token
from virtbridge_nats import key_token, name_of_key, state_key, subject_token
from virtbridge_nats._names import TOKEN_MAX, covers

TRACES = ROOT / "examples" / "traces"
KV_KEY = re.compile(r"^[-/_=.A-Za-z0-9]+$")


@given(st.text(min_size=1, max_size=300))
def test_key_tokens_are_kv_safe_and_reversible(name: str) -> None:
    token = key_token(name)
    assert KV_KEY.match(token) and "." not in token
    if "/" in token:  # the escaped name was too long: cut, with a hash; not reversible
        assert len(token) > 1024 and name_of_key(token) is None
    else:
        assert name_of_key(token) == name


@given(st.text(min_size=1, max_size=2000))
def test_subject_tokens_are_one_bounded_token(name: str) -> None:
    token = subject_token(name)
    assert not set(token) & {".", "*", ">", " ", "\t", "\r", "\n"}
    assert 0 < len(token) <= TOKEN_MAX
    if "~" not in token:
        assert unescape_token(token) == name


def test_long_names_are_cut_and_hashed_but_never_collide() -> None:
    one, two = "ü" * 2048, "ü" * 2047 + "x"
    assert subject_token(one) != subject_token(two)
    assert key_token(one) != key_token(two) and name_of_key(key_token(one)) is None
    assert len(state_key("h", one)) < 4096


def test_covers() -> None:
    assert covers("virtbridge.>", "virtbridge.hv01.domain.*.*")
    assert covers("virtbridge.hv01.>", "virtbridge.hv01.domain.*.*")
    assert covers("virtbridge.*.domain.*.*", "virtbridge.hv01.domain.*.*")
    assert not covers("virtbridge.hv02.>", "virtbridge.hv01.domain.*.*")
    assert not covers("virtbridge.*.domain.*", "virtbridge.hv01.domain.*.*")
    assert not covers("other.>", "virtbridge.hv01.domain.*.*")


def test_hostile_names_stay_data(tmp_path: Path) -> None:
    trace = renamed(TRACES / "poweroff.jsonl", HOSTILE, tmp_path / "hostile.jsonl")
    with NatsServer(tmp_path / "nats") as server:
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host=HOSTILE_HOST,
            sources=[{"type": "replay", "path": str(trace), "progress": False}],
            sinks=[{"type": "nats", "servers": server.url, "stream": "VB", "create_stream": True}],
        )
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=60)
        assert bridge.returncode == 0, err
        names = set()
        for message in read_stream([server.url], "VB"):
            tokens = message.subject.split(".")
            assert len(tokens) == 5 and tokens[0] == "virtbridge" and tokens[2] == "domain"
            assert not {"*", ">"} & set(tokens)
            event = json.loads(message.data)
            assert unescape_token(tokens[1]) == HOSTILE_HOST
            if "~" not in tokens[3]:
                assert unescape_token(tokens[3]) == event["subject"]
            names.add(event["subject"])
        assert names == set(HOSTILE)
        bucket = read_bucket([server.url], "virtbridge_state")
        assert all(KV_KEY.match(key) for key in bucket)
        assert {json.loads(value)["domain"] for value in bucket.values()} == set(HOSTILE)
        # tail gives the names back: states from the bucket, events from the stream
        states = virtbridge("tail", server.url, "--format", "json", "--timeout", "2")
        assert sorted(json.loads(line)["domain"] for line in states.stdout.splitlines()) == sorted(
            HOSTILE
        ), states.stderr
        for name in ("a/b", "x.>", "ü" * 2048):
            one = virtbridge(
                "tail",
                server.url,
                "--stream",
                "VB",
                "--all",
                "--no-states",
                "--domain",
                name,
                "--format",
                "virsh",
                "--count",
                "4",
                "--timeout",
                "10",
            )
            assert one.stdout.splitlines() == [
                f"event 'lifecycle' for domain '{name}': {words}"
                for words in (
                    "Resumed Unpaused",
                    "Started Booted",
                    "Shutdown Finished after guest request",
                    "Stopped Shutdown",
                )
            ], one.stderr


def test_one_tail_sees_three_bridges_in_a_cluster(tmp_path: Path) -> None:
    traces = {"hv01": "poweroff", "hv02": "destroy", "hv03": "suspend-resume"}
    with NatsCluster(tmp_path / "cluster") as cluster:
        expected = 0
        for host, name in traces.items():
            trace = TRACES / f"{name}.jsonl"
            expected += len(
                virtbridge("replay", str(trace), "--format", "json").stdout.splitlines()
            )
            config = write_config(
                tmp_path / f"{host}.toml",
                state_dir=tmp_path / host,
                host=host,
                sources=[{"type": "replay", "path": str(trace), "progress": False}],
                sinks=[
                    {
                        "type": "nats",
                        "servers": cluster.urls[int(host[-1]) - 1],
                        "stream": "VIRTBRIDGE",
                        "create_stream": True,
                        "replicas": 3,
                    }
                ],
            )
            bridge = spawn(config)
            _, err = bridge.communicate(timeout=60)
            assert bridge.returncode == 0, err
        result = virtbridge(
            "tail",
            cluster.urls[0],
            "--stream",
            "VIRTBRIDGE",
            "--all",
            "--format",
            "json",
            "--count",
            str(expected),
            "--timeout",
            "20",
        )
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        states = [line for line in lines if "specversion" not in line]
        events = [line for line in lines if "specversion" in line]
        assert {s["host"] for s in states} == set(traces)
        assert len(events) == expected
        assert {e["source"] for e in events} == {f"virtbridge://{h}" for h in traces}


def test_tail_shows_states_then_live_events(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "nats") as server:
        table = {"type": "nats", "servers": server.url, "stream": "VB", "create_stream": True}
        first = write_config(
            tmp_path / "first.toml",
            state_dir=tmp_path / "s1",
            host="hv01",
            sources=[
                {"type": "replay", "path": str(TRACES / "suspend-resume.jsonl"), "progress": False}
            ],
            sinks=[table],
        )
        bridge = spawn(first)
        assert bridge.wait(60) == 0
        live = TRACES / "acpi-shutdown.jsonl"
        expected = virtbridge("replay", str(live), "--format", "python").stdout.splitlines()
        events = len(virtbridge("replay", str(live), "--format", "json").stdout.splitlines())
        tail = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "virtbridge",
                "tail",
                server.url,
                "--stream",
                "VB",
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
            assert read_lines(tail, 1, 15) == [
                "Domain vm-suspend-resume(-1) state: shutoff (destroyed)"
            ]
            second = write_config(
                tmp_path / "second.toml",
                state_dir=tmp_path / "s2",
                host="hv02",
                sources=[{"type": "replay", "path": str(live), "progress": False}],
                sinks=[table],
            )
            assert spawn(second).wait(60) == 0
            out, err = tail.communicate(timeout=30)
        finally:
            if tail.poll() is None:
                tail.kill()
        assert tail.returncode == 0, err.decode()
        assert out.decode().splitlines() == expected
