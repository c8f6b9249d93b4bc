"""The ``qmp`` source (attach mode) on real QEMU guests the tests start themselves, and on
fake QMP peers that misbehave.

Attach mode observes: it turns what the monitor says into libvirt's events, names each domain
(``domain =``, else QEMU's ``-name``, else the socket's file name), announces a process that
appears while the bridge runs (start events) and never signals a process. Each QEMU here has
a second monitor (``<tag>.mon``) through which the test acts, as another management tool would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.qemu_harness import (
    BOOTED,
    GUEST_SHUTDOWN,
    KILLED,
    BridgeRun,
    Fleet,
    run,
    squash,
    until,
)
from virtbridge_qmp import QmpClient, QmpConnectionError

Images = dict[str, Path]

PAUSED = "SUSPENDED/PAUSED [3/0] -> PAUSED/UNKNOWN [3/0]"
UNPAUSED = "RESUMED/UNPAUSED [4/0] -> RUNNING/UNPAUSED [1/5]"
REBOOTED = "REBOOT+ -> RUNNING/BOOTED [1/1]"
HOST_SHUTDOWN = [
    "SHUTDOWN/HOST [6/2] -> SHUTDOWN/UNKNOWN [4/0]",
    "STOPPED/SHUTDOWN [5/0] -> SHUTOFF/SHUTDOWN [5/1]",
]
QUICK = {"reconnect_min": 0.05, "reconnect_max": 0.2, "scan_interval": 0.05}
"""Reconnect and rescan fast: the tests wait for these, bounded."""


def watch(path: Path, **options: Any) -> dict[str, Any]:
    """A ``qmp`` source table for a socket path or a glob."""
    return {"type": "qmp", "path": str(path), **QUICK, **options}


def connected(r: BridgeRun, source: str, count: int = 1) -> bool:
    sessions = r.sources[source].source.sessions.values()
    return sum(1 for s in sessions if s.connected.is_set() and not s.client.at_eof) >= count


# -- real QEMU ---------------------------------------------------------------------------------


def test_events_are_attributed_to_the_right_domain(
    qemu: Images, tmp_path: Path, sockdir: Path
) -> None:
    """A socket with ``domain =``, and a glob of two: one named by ``-name``, one by its file."""
    uuid = "6a0b1b38-6f8c-4be2-9ad8-3d4f2f1c0c11"

    async def main() -> None:
        async with Fleet(qemu, sockdir) as one, Fleet(qemu, sockdir / "g") as many:
            await asyncio.gather(
                one.spawn("idle", "a", "-name", "alpha"),
                many.spawn("idle", "b", "-name", "bravo", "-uuid", uuid),
                many.spawn("idle", "c"),
            )
            for process in (one["a"], many["b"], many["c"]):
                await process.wait_for_boot("idle")
            sources = [
                {**watch(sockdir / "a.qmp", domain="first"), "name": "one"},
                {**watch(sockdir / "g" / "*.qmp"), "name": "many"},
            ]
            async with BridgeRun(tmp_path, sources=sources) as r:
                await until(lambda: connected(r, "one") and connected(r, "many", 2))
                # Found at start-up: a reconnect, silent as libvirt's, state from query-status.
                assert r.lines() == []
                assert (await r.state("first"))[:2] == ("RUNNING", "BOOTED")
                a, b, c = (await one.monitor("a"), await many.monitor("b"), await many.monitor("c"))
                await a.execute("stop")
                await a.execute("cont")
                await b.execute("system_reset")
                await c.execute("stop")
                await r.wait_for("first", UNPAUSED)
                await r.wait_for("c", PAUSED)
                await many["b"].wait_for_boot("idle", count=2)
                await r.settle()
                assert r.lines("first") == [PAUSED, UNPAUSED]
                assert squash(r.lines("bravo")) == [REBOOTED]
                assert r.lines("c") == [PAUSED]
                assert {e["domain"] for e in r.events()} == {"first", "bravo", "c"}
                assert {e["uuid"] for e in r.events("bravo")} == {uuid}
                assert {e["uuid"] for e in r.events("c")} == {None}
                assert (await r.state("c"))[:2] == ("PAUSED", "UNKNOWN")

    run(main())


def test_sigkill_then_a_new_process_on_the_same_socket(
    qemu: Images, tmp_path: Path, sockdir: Path
) -> None:
    async def main() -> None:
        async with Fleet(qemu, sockdir) as fleet:
            await fleet.spawn("idle", "vm")
            await fleet["vm"].wait_for_boot("idle")
            async with BridgeRun(tmp_path, sources=[watch(sockdir / "vm.qmp")]) as r:
                await until(lambda: connected(r, "qmp"))
                fleet["vm"].send_signal(signal.SIGKILL)
                await r.wait_for("vm", KILLED[0])
                await fleet.spawn("idle", "vm")  # same socket path: a new process
                await r.wait_for("vm", BOOTED[-1])
                await r.settle()
                assert r.lines() == KILLED + BOOTED
                ids = [e["id"] for e in r.events()]
                assert ids[0] == 1 and ids[1] == ids[2] > 1  # a new, larger id
                assert await r.state("vm") == ("RUNNING", "BOOTED", ids[1])

    run(main())


@pytest.mark.parametrize("how", ["socket", "glob"])
def test_attach_never_kills_a_guest_that_powered_off(
    qemu: Images, tmp_path: Path, sockdir: Path, how: str
) -> None:
    """QEMU appears after the bridge (started paused with ``-S``), is announced when ``cont``-ed,
    powers off, and stays there: the engine asks for SIGTERM, attach mode does not send it."""
    path = sockdir / ("vm.qmp" if how == "socket" else "*.qmp")

    async def main() -> None:
        async with Fleet(qemu, sockdir) as fleet, BridgeRun(tmp_path, sources=[watch(path)]) as r:
            await fleet.spawn("poweroff", "vm", "-S")
            await until(lambda: connected(r, "qmp"))
            assert r.lines() == []  # prelaunch: nothing to announce yet
            monitor = await fleet.monitor("vm")
            await monitor.execute("cont")
            await r.wait_for("vm", GUEST_SHUTDOWN[0])
            await r.settle(quiet=0.5)
            assert r.lines() == [*BOOTED, GUEST_SHUTDOWN[0]]
            assert fleet["vm"].process.returncode is None  # still there
            assert (await monitor.execute("query-status"))["status"] == "shutdown"
            assert (await r.state("vm"))[:2] == ("SHUTDOWN", "UNKNOWN")
            fleet["vm"].send_signal(signal.SIGTERM)  # whoever owns it finishes the job
            await r.wait_for("vm", GUEST_SHUTDOWN[-1])
            await r.settle()
            assert r.lines() == BOOTED + GUEST_SHUTDOWN

    run(main())


def test_glob_picks_up_new_vms_and_drops_vanished_ones(
    qemu: Images, tmp_path: Path, sockdir: Path
) -> None:
    async def main() -> None:
        async with Fleet(qemu, sockdir) as fleet:
            await fleet.spawn("idle", "old")
            await fleet["old"].wait_for_boot("idle")
            async with BridgeRun(tmp_path, sources=[watch(sockdir / "*.qmp")]) as r:
                source = r.sources["qmp"].source
                await until(lambda: connected(r, "qmp"))
                await fleet.spawn("idle", "new")
                await r.wait_for("new", BOOTED[-1])
                assert r.lines("old") == []  # there before the bridge: not announced
                # SIGTERM: QEMU says SHUTDOWN, exits and removes its socket; the watch ends.
                fleet["old"].send_signal(signal.SIGTERM)
                await r.wait_for("old", HOST_SHUTDOWN[-1])
                old = str(sockdir / "old.qmp")
                await until(lambda: old not in source._watchers, what="old.qmp dropped")
                # SIGKILL leaves the socket file; the source retries until it is removed.
                fleet["new"].send_signal(signal.SIGKILL)
                await r.wait_for("new", KILLED[0])
                new = str(sockdir / "new.qmp")
                await asyncio.sleep(0.2)
                assert new in source._watchers  # still retrying
                (sockdir / "new.qmp").unlink()
                await until(lambda: new not in source._watchers, what="new.qmp dropped")
                await r.settle()
                assert r.lines("old") == HOST_SHUTDOWN
                assert r.lines("new") == BOOTED + KILLED
                assert r.sources["qmp"].state == "running"

    run(main())


def test_twenty_vms_at_once(qemu: Images, tmp_path: Path, sockdir: Path) -> None:
    """Twenty guests appear under one glob; each is then acted on differently, all at once;
    every event lands on the right domain with that domain's id."""
    actions = {
        0: ("stop", [PAUSED]),
        1: ("reset", [REBOOTED]),
        2: ("kill", KILLED),
        3: ("stop-cont", [PAUSED, UNPAUSED]),
        4: ("term", HOST_SHUTDOWN),
    }
    tags = [f"vm{i:02d}" for i in range(20)]

    async def act(fleet: Fleet, tag: str, what: str) -> None:
        monitor = await fleet.monitor(tag)
        if what == "stop":
            await monitor.execute("stop")
        elif what == "reset":
            await monitor.execute("system_reset")
            await fleet[tag].wait_for_boot("idle", count=2, timeout=20)
        elif what == "kill":
            fleet[tag].send_signal(signal.SIGKILL)
        elif what == "stop-cont":
            await monitor.execute("stop")
            await monitor.execute("cont")
        elif what == "term":
            fleet[tag].send_signal(signal.SIGTERM)

    async def main() -> None:
        async with (
            Fleet(qemu, sockdir) as fleet,
            BridgeRun(tmp_path, sources=[watch(sockdir / "*.qmp")]) as r,
        ):
            await asyncio.gather(*(fleet.spawn("idle", tag) for tag in tags))
            for tag in tags:
                await r.wait_for(tag, BOOTED[-1], timeout=30)
                # Act on booted guests only: resets sent before the first boot, with twenty
                # guests starting at once, left some without any boot marker here.
                await fleet[tag].wait_for_boot("idle", timeout=30)
            await asyncio.gather(
                *(act(fleet, tag, actions[i % 5][0]) for i, tag in enumerate(tags))
            )
            for i, tag in enumerate(tags):
                await r.wait_for(tag, actions[i % 5][1][-1].replace("+", ""), timeout=20)
            await r.settle()
            for i, tag in enumerate(tags):
                assert squash(r.lines(tag)) == BOOTED + actions[i % 5][1], tag
            events = r.events()
            assert {e["domain"] for e in events} == set(tags)
            ids = {tag: {e["id"] for e in events if e["domain"] == tag} for tag in tags}
            assert all(len(found) == 1 for found in ids.values()), ids
            assert len({min(found) for found in ids.values()}) == 20  # one id per domain

    run(main(), timeout=120)


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
            source = watch(sockdir / "*.qmp", line_limit=4096)
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
            attach = r.sources["qmp"].source
            stats = attach.sessions[str(sockdir / "garbage.qmp")].client.stats
            # Each garbage line, twice (before the handshake's answer and after the status).
            assert (stats.invalid_json, stats.not_object, stats.oversized_lines) == (4, 4, 4)
            assert (stats.unknown_messages, stats.unmatched_replies, stats.events) == (6, 2, 1)
            midline = attach.sessions[str(sockdir / "midline.qmp")].client.stats
            assert midline.partial_lines == 1
            await until(lambda: str(sockdir / "midline.qmp") not in attach._watchers)
            assert r.task is not None and not r.task.done()
            status = r.bridge.status()  # type: ignore[union-attr]
            assert status["sources"]["qmp"]["state"] == "running"
            assert status["sources"]["qmp"]["error"] == ""
            assert status["plugin_errors"] == {}

    run(main())


def test_a_single_socket_that_appears_late_is_a_new_vm(
    qemu: Images, tmp_path: Path, sockdir: Path
) -> None:
    """Nobody listened on the socket when the bridge started: what answers later is a process
    that started while the bridge ran, and is announced."""

    async def main() -> None:
        async with (
            Fleet(qemu, sockdir) as fleet,
            BridgeRun(tmp_path, sources=[watch(sockdir / "vm.qmp")]) as r,
        ):
            await asyncio.sleep(0.2)  # a few failed attempts
            await fleet.spawn("idle", "vm")
            await r.wait_for("vm", BOOTED[-1])
            await r.settle()
            assert r.lines() == BOOTED

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
            source = watch(sockdir / "*.qmp", scan_interval=0.001)
            r = await stack.enter_async_context(BridgeRun(tmp_path, sources=[source]))
            attach = r.sources["qmp"].source
            await until(lambda: attach._watchers == {} and len(attach.sessions) == 30)
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
