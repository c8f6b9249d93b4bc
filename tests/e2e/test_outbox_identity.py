"""The durable outbox's promises about names and numbers: an event id never names two events,
whatever fails (here: a full disk, then a crash), and a sink removed from the configuration
does not pin the outbox for ever."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from virtbridge.config.load import load
from virtbridge.runtime.bridge import Bridge

TESTKIT = "tests.plugins.testkit_plugin"


def delivered(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_ids_are_never_reused_after_a_full_disk_and_a_crash(tmp_path: Path) -> None:
    out = tmp_path / "out"
    data = {
        "bridge": {"state_dir": str(tmp_path / "state"), "control_socket": "off"},
        "sources": [{"type": "ticker", "count": 100_000, "interval": 0.002}],
        "sinks": [{"type": "slow", "path": str(out), "batch_size": 8}],
    }

    async def crashed_run() -> None:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        while getattr(bridge.outbox, "_db", None) is None or len(delivered(out)) < 50:
            await asyncio.sleep(0.01)
        outbox: Any = bridge.outbox
        pages = await outbox._run(lambda: outbox._db.execute("PRAGMA page_count").fetchone()[0])
        await outbox._run(lambda: outbox._db.execute(f"PRAGMA max_page_count = {pages}"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not outbox.degraded:
            await asyncio.sleep(0.01)
        assert outbox.degraded
        await asyncio.sleep(0.5)  # events go out unstored meanwhile
        task.cancel()  # a crash: nothing more is stored, nothing is flushed

    asyncio.run(crashed_run())
    first = delivered(out)
    with sqlite3.connect(tmp_path / "state" / "outbox.sqlite3") as db:
        stored = db.execute("SELECT MAX(last) FROM chunks").fetchone()[0]
    unstored = {item["seq"]: item["id"] for item in first if item["seq"] > stored}
    assert unstored, "no event went out unstored: the test proves nothing"

    async def next_run() -> None:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        while len(delivered(out)) < len(first) + len(unstored) + 50:
            await asyncio.sleep(0.01)
        bridge.request_stop()
        await asyncio.wait_for(task, 30)

    asyncio.run(next_run())
    second = delivered(out)[len(first) :]
    again = {item["seq"]: item["id"] for item in second if item["seq"] in unstored}
    assert again, "the numbers were not used again: the test proves nothing"
    # The numbers come round again for new events, under ids of their own.
    assert all(again[seq] != unstored[seq] for seq in again)
    ids = [item["id"] for item in delivered(out)]
    events_per_id: dict[str, set[int]] = {}
    for item in delivered(out):
        events_per_id.setdefault(item["id"], set()).add(item["seq"])
    assert all(len(seqs) == 1 for seqs in events_per_id.values())
    assert len(ids) >= len(set(ids))


@pytest.mark.parametrize("removed", ["slow-b", "virtbridge_on_event"])
def test_a_removed_reader_does_not_pin_the_outbox(
    tmp_path: Path, removed: str, caplog: pytest.LogCaptureFixture
) -> None:
    """slow-b hangs: its cursor stays at the first run's start; once it is removed from the
    configuration, the events it held back go.  The on_event worker of a plugin that is no
    longer loaded is forgotten the same way."""
    with_hang = {"type": "slow", "name": "slow-b", "path": str(tmp_path / "b"), "hang": True}
    first_sinks = [{"type": "slow", "name": "slow-a", "path": str(tmp_path / "a")}]
    plugins = [TESTKIT]
    if removed == "slow-b":
        first_sinks.append(with_hang)
    else:
        plugins.append("tests.plugins.counting_plugin")

    def config(sinks: list[dict[str, Any]], extra: list[str]) -> Any:
        data = {
            "bridge": {
                "state_dir": str(tmp_path / "state"),
                "control_socket": "off",
                "drain_timeout": 0.2,
            },
            "sources": [{"type": "ticker", "count": 3000, "interval": 0, "finish": True}],
            "sinks": sinks,
        }
        return load(None, data=data, extra_plugins=extra)

    async def run(sinks: list[dict[str, Any]], extra: list[str]) -> None:
        await asyncio.wait_for(Bridge(config(sinks, extra)).run(handle_signals=False), 60)

    asyncio.run(run(first_sinks, plugins))
    db_path = tmp_path / "state" / "outbox.sqlite3"
    with sqlite3.connect(db_path) as db:
        assert removed in dict(db.execute("SELECT sink, seq FROM cursors"))
        first_last = db.execute("SELECT MAX(last) FROM chunks").fetchone()[0]
    caplog.set_level("INFO")
    asyncio.run(run(first_sinks[:1], [TESTKIT]))
    assert any(
        f"forgot the cursor of sink {removed!r}" in record.getMessage() for record in caplog.records
    )
    with sqlite3.connect(db_path) as db:
        assert removed not in dict(db.execute("SELECT sink, seq FROM cursors"))
        oldest = db.execute("SELECT MIN(first) FROM chunks").fetchone()[0]
    if removed == "slow-b":  # what it held back is compacted away
        assert oldest is None or oldest > first_last
