"""What the durable outbox holds when it matters: an action goes to the hypervisor only once
the events and the domain's state that caused it are stored, and a shutdown request's
deadline still fires after the bridge restarted."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from virtbridge import Intent, IntentKind, QmpEvent, Timestamp
from virtbridge.config.load import load
from virtbridge.engine.engine import SAVED_SLOTS
from virtbridge.runtime.bridge import Bridge

TESTKIT = "tests.plugins.testkit_plugin"


def settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "state_dir": str(tmp_path / "state"),
        "control_socket": "off",
        "drain_timeout": 1,
        **extra,
    }


def test_an_action_waits_until_its_cause_is_stored(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    data = {
        "bridge": settings(tmp_path),
        "sources": [{"type": "actor", "report": str(report)}],
        "sinks": [{"type": "null"}],
    }

    async def scenario() -> int:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and b"Kill" not in (
            report.read_bytes() if report.exists() else b""
        ):
            await asyncio.sleep(0.01)
        emitted = bridge.outbox.last_seq
        bridge.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
        return emitted

    emitted = asyncio.run(scenario())
    actions = [json.loads(line) for line in report.read_text().splitlines()]
    kill = next(action for action in actions if action["action"] == "Kill")
    # Every event of the burst, the SHUTDOWN/GUEST that asked for the kill included, and the
    # domain's record in state SHUTDOWN were on disk when the kill was asked for.
    assert kill["stored"] == emitted
    record = dict(zip(SAVED_SLOTS, json.loads(kill["record"]), strict=False))
    assert record["state"] == 4  # SHUTDOWN


def test_a_restored_shutdown_request_still_times_out(tmp_path: Path) -> None:
    """The bridge stops while a guest ignores a shutdown request; after the restart the
    request's deadline is armed again and still gives SHUTDOWN/IGNORED (the escalation that
    follows it: tests/core/test_actions_and_errors.py)."""
    out = tmp_path / "events.jsonl"
    data = {
        "bridge": settings(tmp_path, shutdown_timeout=1.5, on_shutdown_timeout="destroy"),
        "sinks": [{"type": "jsonl", "path": str(out)}],
    }
    now = Timestamp.from_float

    async def first() -> None:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        while bridge.started_at == 0:
            await asyncio.sleep(0.01)
        for signal in (
            Intent(domain="vm", intent=IntentKind.DEFINE, timestamp=now(time.time())),
            Intent(domain="vm", intent=IntentKind.START, timestamp=now(time.time())),
            QmpEvent(domain="vm", event="RESUME", timestamp=now(time.time())),
            Intent(domain="vm", intent=IntentKind.SHUTDOWN, timestamp=now(time.time())),
        ):
            await bridge.intent(signal)
        bridge.request_stop()
        assert await asyncio.wait_for(task, 30) == 0

    async def second() -> None:
        bridge = Bridge(load(None, data=data, extra_plugins=[TESTKIT]))
        task = asyncio.create_task(bridge.run(handle_signals=False))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"IGNORED" not in (
            out.read_bytes() if out.exists() else b""
        ):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        bridge.request_stop()
        assert await asyncio.wait_for(task, 30) == 0

    asyncio.run(first())
    asyncio.run(second())
    words = [
        (line["data"].get("event"), line["data"].get("detail"))
        for line in map(json.loads, out.read_text().splitlines())
    ]
    assert ("SHUTDOWN", "REQUESTED") in words
    assert words[-1] == ("SHUTDOWN", "IGNORED"), words
