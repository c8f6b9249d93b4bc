"""Sinks that acknowledge later: the worker keeps a window of batches outstanding, advances
the cursor only as acknowledgements arrive in order, and after a failed acknowledgement
hands everything over again from the first unacknowledged record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from virtbridge.config.load import load
from virtbridge.runtime.bridge import Bridge

TESTKIT = "tests.plugins.testkit_plugin"


def run(
    tmp_path: Path, sink: dict[str, Any], count: int = 2000
) -> tuple[Bridge, list[dict[str, Any]]]:
    log = tmp_path / "sink.jsonl"
    data = {
        "sources": [
            {"type": "ticker", "count": count, "interval": 0, "domains": 5, "finish": True}
        ],
        "sinks": [{"type": "acking", "path": str(log), **sink}],
        "bridge": {
            "drain_timeout": 10,
            "state_dir": str(tmp_path / "state"),
            "control_socket": "off",
        },
    }

    async def scenario() -> Bridge:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        assert await asyncio.wait_for(bridge.run(handle_signals=False), 60) == 0
        return bridge

    bridge = asyncio.run(scenario())
    return bridge, [json.loads(line) for line in log.read_text().splitlines()]


def test_batches_overlap_up_to_the_window(tmp_path: Path) -> None:
    bridge, entries = run(tmp_path, {"window": 64, "batch_size": 8, "delay": 0.005})
    total = bridge.outbox.last_seq
    sent = [seq for entry in entries if "sent" in entry for seq in entry["sent"]]
    acked = [seq for entry in entries if "acked" in entry for seq in entry["acked"]]
    assert sent == list(range(1, total + 1))  # nothing twice: no failure happened
    assert acked == sent
    peak = max(entry["outstanding"] for entry in entries if "sent" in entry)
    assert 8 < peak <= 64  # batches overlapped, never beyond the window


def test_a_failed_acknowledgement_resends_from_the_first_unacknowledged(tmp_path: Path) -> None:
    bridge, entries = run(
        tmp_path,
        {
            "window": 64,
            "batch_size": 8,
            "delay": 0.002,
            "fail_at": [20, 21, 60],
            "retry_max_interval": 0.05,
        },
    )
    total = bridge.outbox.last_seq
    acked = [seq for entry in entries if "acked" in entry for seq in entry["acked"]]
    assert sorted(set(acked)) == list(range(1, total + 1))
    # Acknowledged in order: each record's first acknowledgement follows its predecessor's.
    first: list[int] = []
    for seq in acked:
        if seq not in first:
            first.append(seq)
    assert first == list(range(1, total + 1))
    # Handed over again only after a failure, starting from the first unacknowledged record.
    sent = [entry["sent"] for entry in entries if "sent" in entry]
    restarts = [i for i in range(1, len(sent)) if sent[i][0] <= sent[i - 1][-1]]
    assert 1 <= len(restarts) <= 3
    stats = bridge.status()
    assert stats["sinks"] == {}  # stopped
    assert bridge.workers == {}


def test_a_rejected_acknowledgement_dead_letters_and_moves_on(tmp_path: Path) -> None:
    bridge, entries = run(
        tmp_path, {"window": 32, "batch_size": 4, "reject_kind": "reboot"}, count=50
    )
    acked = [seq for entry in entries if "acked" in entry for seq in entry["acked"]]
    assert acked == list(range(1, 11))  # the ten start events; every reboot batch refused
    sent = [seq for entry in entries if "sent" in entry for seq in entry["sent"]]
    assert sent == list(range(1, bridge.outbox.last_seq + 1))  # nothing sent twice
