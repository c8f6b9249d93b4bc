"""The ``qmp`` source (attach mode) against fake QMP peers in the test: garbage, oversized and
cut-off lines beside a real guest; sockets that vanish with their process; and stopping a
bridge whose monitors are closing or retrying (a cancellation must never be lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.qemu_harness import (
    HOST_SHUTDOWN,
    KILLED,
    PAUSED,
    UNPAUSED,
    BridgeRun,
    attach,
    run,
    until,
)
from tests.plugins.qemu_processes import Fleet
from virtbridge_qmp import QmpClient, QmpConnectionError

Images = dict[str, Path]

REBOOTED = "REBOOT+ -> RUNNING/BOOTED [1/1]"


# -- fake QMP peers that misbehave ------------------------------------------------------------

GREETING = (
    b'{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}\r\n'
)
GARBAGE = [
    b"this is not json",
    b"[1, 2, 3]",
    b'"just a string"',
    b"\xff\xfe{not utf-8}",
    b"[" * 50_000,  # nests too deep for the decoder
    b'{"neither": "event nor reply"}',
    b'{"event": 42}',
    b'{"event": "STOP", "data": [1]}',
    b'{"return": {}, "id": "nobody-asked"}',
    b"x" * 10_000,  # over the source's line_limit (4096)
    b"",
]
STOP = b'{"event": "STOP", "timestamp": {"seconds": 1700000000, "microseconds": 1}}\r\n'
SIGNALLED = (
    b'{"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-signal"}, '
    b'"timestamp": {"seconds": 1700000000, "microseconds": 2}}\r\n'
)
ANSWERS: dict[str, Any] = {
    "qmp_capabilities": {},
    "query-uuid": {"UUID": "00000000-0000-0000-0000-000000000000"},
    "query-status": {"status": "running", "singlestep": False, "running": True},
}


@contextlib.asynccontextmanager
async def fake_peer(path: Path, script: str) -> AsyncIterator[None]:
    """A unix-socket QMP peer. ``garbage``: greets, sends garbage, answers the handshake, sends
    more garbage and then a valid STOP, and stays; ``midline``: after the handshake, closes in
    the middle of a line (removing its socket first, so it is gone for good); ``vanish``: says
    SHUTDOWN (host-signal), removes its socket and closes, as QEMU does on SIGTERM; ``hangup``: closes every connection at once, without a greeting."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if script == "hangup":
                return
            writer.write(GREETING)
            if script == "garbage":
                writer.write(b"\r\n".join(GARBAGE) + b"\r\n")
            while line := await reader.readline():
                command = json.loads(line)
                name = command.get("execute")
                if name in ANSWERS:
                    answer: dict[str, Any] = {"return": ANSWERS[name]}
                else:  # query-name and the rest: as QEMU answers what it does not know
                    answer = {"error": {"class": "CommandNotFound", "desc": f"{name}?"}}
                writer.write(json.dumps({**answer, "id": command.get("id")}).encode() + b"\r\n")
                await writer.drain()
                if name == "query-status" and script == "garbage":
                    writer.write(b"\r\n".join(GARBAGE) + b"\r\n" + STOP)
                    await writer.drain()
                elif name == "query-status" and script == "midline":
                    path.unlink()
                    writer.write(b'{"event": "RESUME", "timest')
                    await writer.drain()
                    return
                elif name == "query-status" and script == "vanish":
                    writer.write(SIGNALLED)
                    await writer.drain()
                    path.unlink()  # as QEMU does when it exits
                    return
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve, str(path))
    try:
        yield
    finally:
        server.close()
        path.unlink(missing_ok=True)


def test_misbehaving_peers_disturb_nobody(qemu: Images, tmp_path: Path, sockdir: Path) -> None:
    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            fleet = await stack.enter_async_context(Fleet(qemu, sockdir))
            await fleet.spawn("idle", "real")
            await fleet["real"].wait_for_boot("idle")
            for script in ("garbage", "midline", "hangup"):
                await stack.enter_async_context(fake_peer(sockdir / f"{script}.qmp", script))
            source = attach(sockdir / "*.qmp", line_limit=4096)
            r = await stack.enter_async_context(BridgeRun(tmp_path, sources=[source]))
            await r.wait_for("garbage", PAUSED)  # the valid event after the garbage
            await r.wait_for("midline", KILLED[0])  # a stream cut mid-line is an EOF
            monitor = await fleet.monitor("real")
            await monitor.execute("stop")
            await monitor.execute("cont")
            await r.wait_for("real", UNPAUSED)
            await r.settle()
            assert r.lines("garbage") == [PAUSED]
            assert r.lines("midline") == KILLED
            assert r.lines("real") == [PAUSED, UNPAUSED]
            assert {e["domain"] for e in r.events()} == {"garbage", "midline", "real"}
            source_ = r.sources["qmp"].source
            stats = source_.sessions[str(sockdir / "garbage.qmp")].client.stats
            # Each garbage line, twice (before the handshake's answer and after the status).
            assert (stats.invalid_json, stats.not_object, stats.oversized_lines) == (4, 4, 4)
            assert (stats.unknown_messages, stats.unmatched_replies, stats.events) == (6, 2, 1)
            midline = source_.sessions[str(sockdir / "midline.qmp")].client.stats
            assert midline.partial_lines == 1
            await until(lambda: str(sockdir / "midline.qmp") not in source_._watchers)
            assert r.task is not None and not r.task.done()
            status = r.bridge.status()  # type: ignore[union-attr]
            assert status["sources"]["qmp"]["state"] == "running"
            assert status["sources"]["qmp"]["error"] == ""
            assert status["plugin_errors"] == {}

    run(main())


def test_a_socket_that_vanishes_with_its_process_still_reports_the_eof(
    tmp_path: Path, sockdir: Path
) -> None:
    """A QEMU that exits removes its socket: the glob's rescan must not cut short the watcher
    that is still reporting that EOF (it used to cancel it, losing STOPPED/FAILED)."""
    names = [f"vm{i:02d}" for i in range(30)]

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            for name in names:
                await stack.enter_async_context(fake_peer(sockdir / f"{name}.qmp", "vanish"))
            source = attach(sockdir / "*.qmp", scan_interval=0.001)
            r = await stack.enter_async_context(BridgeRun(tmp_path, sources=[source]))
            source_ = r.sources["qmp"].source
            await until(lambda: source_._watchers == {} and len(source_.sessions) == 30)
            await r.settle()
            assert {name: r.lines(name) for name in names} == {
                name: HOST_SHUTDOWN for name in names
            }

    run(main())


def test_cancelling_a_close_in_progress_is_not_swallowed(sockdir: Path) -> None:
    """A watcher cancelled while it closes its monitor must end: closing used to swallow the
    CancelledError (it awaited the reader task it had cancelled under contextlib.suppress),
    so the watcher reconnected and a stopping bridge waited for it forever."""

    async def main() -> None:
        async with fake_peer(sockdir / "vm.qmp", "garbage"):
            client = QmpClient(sockdir / "vm.qmp")
            await client.connect()
            closing = asyncio.create_task(client.close())
            await asyncio.sleep(0)  # closing now waits for the reader task to end
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
            await client.close()  # and a later close still works

    run(main(), timeout=10)


def test_cancelling_a_connect_that_just_failed_is_not_swallowed(sockdir: Path) -> None:
    """The watcher of a killed VM retries its stale socket; a bridge that stops cancels it.
    With Python < 3.12's asyncio.wait_for, a cancellation arriving just as the connect attempt
    failed was lost (wait_for raised the connect error instead), and the watcher went on
    retrying forever: the bridge never stopped."""
    stale = sockdir / "stale.qmp"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(stale))  # a socket file nobody listens on: connection refused

    async def main() -> None:
        for steps in range(12):  # cancel at every point of the attempt in turn
            attempt = asyncio.create_task(QmpClient(stale).connect())
            for _ in range(steps):
                await asyncio.sleep(0)
            if attempt.done():
                assert isinstance(attempt.exception(), QmpConnectionError)
                continue
            attempt.cancel()
            with pytest.raises(asyncio.CancelledError):
                await attempt

    run(main(), timeout=10)
