"""The asyncio QMP client: against a scripted fake server (protocol edge cases) and real QEMU."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.guests import write_images
from tests.support.qemu import QemuProcess, connect_qmp, require_qemu, spawn_qemu
from virtbridge_qmp import (
    EventMessage,
    QmpClient,
    QmpCommandError,
    QmpConnectionError,
    QmpEof,
    QmpTimeout,
    QmpTimestamp,
)
from virtbridge_qmp._framing import LineFramer, Oversized

T = TypeVar("T")
Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
Handler = Callable[[Reader, Writer], Awaitable[None]]

GREETING = json.dumps({"QMP": {"version": {"qemu": {"major": 7, "minor": 2}}, "capabilities": []}})
WAIT = 5.0  # bound for every single wait in these tests


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """Run a test coroutine with an overall bound (pytest-asyncio is not used)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# -- a scripted fake QMP server --------------------------------------------------------------


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\r\n"  # QEMU ends lines with CRLF


def event_line(name: str, data: dict[str, Any] | None = None, seconds: int = 1700000000) -> bytes:
    message: dict[str, Any] = {"event": name}
    if data is not None:
        message["data"] = data
    message["timestamp"] = {"seconds": seconds, "microseconds": 250}
    return line(message)


async def read_command(reader: Reader) -> dict[str, Any]:
    command: dict[str, Any] = json.loads(await asyncio.wait_for(reader.readline(), WAIT))
    return command


def reply(writer: Writer, command: dict[str, Any], value: Any = None) -> None:
    writer.write(line({"return": {} if value is None else value, "id": command["id"]}))


async def handshake(reader: Reader, writer: Writer) -> None:
    writer.write(GREETING.encode() + b"\r\n")
    reply(writer, await read_command(reader))
    await writer.drain()


@contextlib.asynccontextmanager
async def fake_qmp(tmp_path: Path, handler: Handler) -> AsyncIterator[str]:
    """A unix-socket server running ``handler`` for each connection; yields the socket path."""
    path = str(tmp_path / "fake.qmp")

    async def serve(reader: Reader, writer: Writer) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_unix_server(serve, path)
    async with server:
        yield path


# -- protocol tests --------------------------------------------------------------------------


def test_replies_are_matched_by_id_while_events_interleave(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def handler(reader: Reader, writer: Writer) -> None:
        await handshake(reader, writer)
        first, second = await read_command(reader), await read_command(reader)
        seen.extend([first, second])
        reply(writer, second, {"name": second["execute"]})
        writer.write(event_line("STOP"))
        reply(writer, first, {"name": first["execute"]})
        await writer.drain()
        await reader.read()  # keep the connection until the client closes

    async def main() -> None:
        async with fake_qmp(tmp_path, handler) as path, QmpClient(path) as qmp:
            a, b = await asyncio.gather(
                qmp.execute("query-status"), qmp.execute("query-name", {"x": 1})
            )
            assert (a, b) == ({"name": "query-status"}, {"name": "query-name"})
            event = await qmp.next_event(WAIT)
            assert event.name == "STOP"
            assert qmp.greeting is not None and "QMP" in qmp.greeting
            assert qmp.stats.replies == 3 and qmp.stats.events == 1

    run(main())
    assert seen[0]["id"] != seen[1]["id"]
    assert {"query-status", "query-name"} == {c["execute"] for c in seen}
    assert [c.get("arguments") for c in seen if c["execute"] == "query-name"] == [{"x": 1}]


def test_garbage_is_logged_counted_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = [
        b"this is not json",
        b"[1, 2, 3]",
        b"42",
        b'"a string"',
        b"\xff\xfe\x00{",  # not UTF-8
        b"[" * 100_000,  # nests too deep for the decoder
        b'{"something": "else"}',
        b'{"event": 5}',
        b'{"event": "X", "data": [1]}',
        b'{"QMP": {}}',  # a second greeting
        b'{"return": {}, "id": "nobody-asked"}',
        b'{"return": {}, "id": ["unhashable"]}',
        b"",
        b"   ",
    ]

    async def handler(reader: Reader, writer: Writer) -> None:
        await handshake(reader, writer)
        writer.write(b"\n".join(garbage) + b"\n" + event_line("RESUME"))
        await writer.drain()
        reply(writer, await read_command(reader), {"still": "alive"})
        await reader.read()

    async def main() -> QmpClient:
        async with fake_qmp(tmp_path, handler) as path, QmpClient(path) as qmp:
            assert (await qmp.next_event(WAIT)).name == "RESUME"
            assert await qmp.execute("query-status") == {"still": "alive"}
            return qmp

    with caplog.at_level(logging.WARNING, logger="virtbridge.qmp"):
        qmp = run(main())
    stats = qmp.stats
    assert stats.invalid_json == 3
    assert stats.not_object == 3
    assert stats.unknown_messages == 4
    assert stats.unmatched_replies == 2
    assert stats.events == 1 and stats.reader_errors == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 12
    assert {r.name for r in warnings} == {"virtbridge.qmp"}


def test_oversized_lines_are_discarded_up_to_the_newline(tmp_path: Path) -> None:
    limit = 100
    fits = event_line("FITS").rstrip(b"\r\n")
    fits = fits[:-1] + b" " * (limit - len(fits)) + b"}"
    assert len(fits) == limit

    async def handler(reader: Reader, writer: Writer) -> None:
        await handshake(reader, writer)
        for _ in range(3):  # one long line in several reads
            writer.write(b'{"event": "LOST", "pad": "' + b"x" * 100)
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(b'"}\n' + fits + b"\n")
        writer.write(event_line("LOST-TOO", {"pad": "y" * 100}))
        writer.write(event_line("AFTER"))
        await writer.drain()
        await reader.read()

    async def main() -> QmpClient:
        async with fake_qmp(tmp_path, handler) as path, QmpClient(path, line_limit=limit) as qmp:
            assert (await qmp.next_event(WAIT)).name == "FITS"
            assert (await qmp.next_event(WAIT)).name == "AFTER"
            return qmp

    qmp = run(main())
    assert qmp.stats.oversized_lines == 2
    assert qmp.stats.events == 2


def test_stream_closing_mid_line_ends_with_eof(tmp_path: Path) -> None:
    eofs: list[float] = []

    async def handler(reader: Reader, writer: Writer) -> None:
        await handshake(reader, writer)
        writer.write(event_line("SHUTDOWN", {"guest": False, "reason": "host-signal"}))
        writer.write(b'{"event": "STO')
        await writer.drain()

    async def main() -> QmpClient:
        async with fake_qmp(tmp_path, handler) as path:
            qmp = QmpClient(path, on_eof=lambda: eofs.append(time.time()))
            async with qmp:
                received = []
                with pytest.raises(QmpEof):
                    async for event in qmp.events():
                        received.append(event)
                assert [e.name for e in received] == ["SHUTDOWN"]
                assert qmp.at_eof
                with pytest.raises(QmpEof):  # the end stays the end
                    await qmp.next_event(WAIT)
                with pytest.raises(QmpEof):
                    await qmp.execute("query-status")
            return qmp

    qmp = run(main())
    assert qmp.stats.partial_lines == 1
    assert len(eofs) == 1


def test_pending_command_fails_when_the_server_closes(tmp_path: Path) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        await handshake(reader, writer)
        await read_command(reader)  # ... and hang up without answering

    async def main() -> None:
        async with fake_qmp(tmp_path, handler) as path, QmpClient(path) as qmp:
            with pytest.raises(QmpEof, match="quit"):
                await qmp.execute("quit")

    run(main())


def test_command_timeout_and_late_reply(tmp_path: Path) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        await handshake(reader, writer)
        slow = await read_command(reader)
        fast = await read_command(reader)
        reply(writer, slow)  # too late: its caller gave up
        reply(writer, fast, "fast")
        await writer.drain()
        await reader.read()

    async def main() -> QmpClient:
        async with fake_qmp(tmp_path, handler) as path, QmpClient(path) as qmp:
            with pytest.raises(QmpTimeout) as caught:
                await qmp.execute("slow", timeout=0.1)
            assert caught.value.command == "slow" and caught.value.timeout == 0.1
            assert await qmp.execute("fast") == "fast"
            return qmp

    assert run(main()).stats.unmatched_replies == 1


def test_error_reply_raises_command_error(tmp_path: Path) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        await handshake(reader, writer)
        command = await read_command(reader)
        error = {"class": "GenericError", "desc": "Resetting the Virtual Machine is required"}
        writer.write(line({"error": error, "id": command["id"]}))
        command = await read_command(reader)
        writer.write(line({"error": "odd", "id": command["id"]}))
        await writer.drain()
        await reader.read()

    async def main() -> None:
        async with fake_qmp(tmp_path, handler) as path, QmpClient(path) as qmp:
            with pytest.raises(QmpCommandError) as caught:
                await qmp.execute("cont")
            assert caught.value.command == "cont"
            assert caught.value.error_class == "GenericError"
            assert caught.value.desc == "Resetting the Virtual Machine is required"
            with pytest.raises(QmpCommandError) as caught:
                await qmp.execute("odd")
            assert caught.value.error_class == "UnknownError"

    run(main())


def test_event_fields_and_bad_timestamps(tmp_path: Path) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        await handshake(reader, writer)
        writer.write(event_line("STOP"))
        writer.write(event_line("RESET", {"guest": True, "reason": "guest-reset"}))
        writer.write(line({"event": "ODD", "timestamp": {"seconds": True, "microseconds": 0}}))
        await writer.drain()
        await reader.read()

    async def main() -> tuple[list[EventMessage], QmpClient]:
        async with fake_qmp(tmp_path, handler) as path, QmpClient(path) as qmp:
            return [await qmp.next_event(WAIT) for _ in range(3)], qmp

    before = time.time()
    (stop, reset, odd), qmp = run(main())
    assert stop.data == {} and stop.timestamp == QmpTimestamp(1700000000, 250)
    assert "data" not in stop.raw
    assert reset.data == {"guest": True, "reason": "guest-reset"}
    assert reset.raw["event"] == "RESET"
    assert odd.timestamp.seconds >= int(before)  # the host clock stands in
    assert qmp.stats.bad_timestamps == 1


def test_callback_errors_are_counted_and_events_still_queued(tmp_path: Path) -> None:
    def explode(event: EventMessage) -> None:
        raise RuntimeError(f"callback bug on {event.name}")

    async def handler(reader: Reader, writer: Writer) -> None:
        await handshake(reader, writer)
        writer.write(event_line("STOP"))
        await writer.drain()

    async def main() -> QmpClient:
        async with fake_qmp(tmp_path, handler) as path, QmpClient(path, on_event=explode) as qmp:
            assert (await qmp.next_event(WAIT)).name == "STOP"
            with pytest.raises(QmpEof):
                await qmp.next_event(WAIT)
            return qmp

    assert run(main()).stats.callback_errors == 1


def test_connect_failures(tmp_path: Path) -> None:
    async def silent(reader: Reader, writer: Writer) -> None:
        await reader.read()

    async def hang_up(reader: Reader, writer: Writer) -> None:
        writer.write(b'{"QMP"')

    async def main() -> None:
        with pytest.raises(QmpConnectionError, match="cannot connect"):
            await QmpClient(str(tmp_path / "missing.qmp")).connect()
        async with fake_qmp(tmp_path, silent) as path:
            with pytest.raises(QmpConnectionError, match="no QMP greeting"):
                await QmpClient(path, connect_timeout=0.2).connect()
        async with fake_qmp(tmp_path, hang_up) as path:
            with pytest.raises(QmpEof):
                await QmpClient(path).connect()

    run(main())


def test_tcp_address_and_local_close(tmp_path: Path) -> None:
    async def handler(reader: Reader, writer: Writer) -> None:
        await handshake(reader, writer)
        writer.write(event_line("POWERDOWN"))
        await writer.drain()
        await reader.read()

    async def serve(reader: Reader, writer: Writer) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            qmp = QmpClient(("127.0.0.1", port))
            async with qmp:
                assert (await qmp.next_event(WAIT)).name == "POWERDOWN"
            assert [e async for e in qmp.events()] == []  # a local close ends quietly
            assert not qmp.at_eof
            with pytest.raises(QmpConnectionError) as caught:
                await qmp.execute("query-status")
            assert not isinstance(caught.value, QmpEof)

    run(main())


@given(
    lines=st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10),
    limit=st.integers(min_value=1, max_value=16),
)
def test_framer_is_independent_of_chunking(lines: list[bytes], cuts: list[int], limit: int) -> None:
    stream = b"".join(item + b"\n" for item in lines)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    framer = LineFramer(limit)
    out: list[bytes | Oversized] = []
    for start, end in itertools.pairwise(bounds):
        out.extend(framer.feed(stream[start:end]))
    kept = [item for item in out if isinstance(item, bytes)]
    assert kept == [i for i in lines if len(i) <= limit]
    assert sum(isinstance(item, Oversized) for item in out) == sum(len(i) > limit for i in lines)
    assert framer.pending == b""


# -- against real QEMU -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_images(tmp_path_factory.mktemp("images"))


async def expect(qmp: QmpClient, *expected: tuple[str, dict[str, Any]]) -> None:
    for name, data in expected:
        event = await qmp.next_event(WAIT)
        assert (event.name, event.data) == (name, data)


async def start_guest(
    image: Path, workdir: Path, extra: tuple[str, ...] = ()
) -> tuple[QemuProcess, QmpClient]:
    """Launch paused (-S), connect, then ``cont``: QEMU only sends events to a connected client,
    so a guest that acts at once would otherwise race the connection."""
    vm = await spawn_qemu(image, workdir, ["-S", *extra])
    try:
        qmp = await connect_qmp(vm.qmp_path, timeout=WAIT)
        await qmp.execute("cont")
        await expect(qmp, ("RESUME", {}))
    except BaseException:
        await vm.kill()
        raise
    return vm, qmp


HOST_RESET = ("RESET", {"guest": False, "reason": "host-qmp-system-reset"})
GUEST_RESET = ("RESET", {"guest": True, "reason": "guest-reset"})


def test_real_qemu_commands_events_and_eof(tmp_path: Path, images: dict[str, Path]) -> None:
    require_qemu()

    async def main() -> None:
        vm, qmp = await start_guest(images["idle"], tmp_path, ("-name", "vm-qmp-test"))
        try:
            await vm.wait_for_boot("idle")
            status = await qmp.execute("query-status")
            assert (status["status"], status["running"]) == ("running", True)
            assert await qmp.execute("query-name") == {"name": "vm-qmp-test"}
            await qmp.execute("stop")
            await expect(qmp, ("STOP", {}))
            assert (await qmp.execute("query-status"))["status"] == "paused"
            await qmp.execute("cont")
            await expect(qmp, ("RESUME", {}))
            await qmp.execute("system_reset")
            await expect(qmp, HOST_RESET, GUEST_RESET)  # then maybe one more from SeaBIOS
            await vm.wait_for_boot("idle", count=2)
            with pytest.raises(QmpCommandError, match="not in suspended state"):
                await qmp.execute("system_wakeup")
            vm.send_signal(signal.SIGKILL)
            names = []
            with pytest.raises(QmpEof):
                async for event in qmp.events():
                    names.append(event.name)
            assert set(names) <= {"RESET"}
            assert await vm.wait(WAIT) == -signal.SIGKILL
            assert qmp.stats.invalid_json == qmp.stats.unknown_messages == 0
            await qmp.close()
        finally:
            await vm.kill()

    run(main())


REAL_CASES: dict[str, tuple[str, tuple[str, ...], str | None, list[tuple[str, dict[str, Any]]]]] = {
    # id: (variant, extra args, command after boot, expected events in order)
    "poweroff": (
        "poweroff",
        (),
        None,
        [("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"}), ("STOP", {})],
    ),
    "acpi-button": (
        "acpi",
        (),
        "system_powerdown",
        [
            ("POWERDOWN", {}),
            ("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"}),
            ("STOP", {}),
        ],
    ),
    "idle-ignores-button": ("idle", (), "system_powerdown", [("POWERDOWN", {})]),
    "panic": ("panic", (), None, [("GUEST_PANICKED", {"action": "pause"}), ("STOP", {})]),
    "crashloaded": ("crashloaded", (), None, [("GUEST_CRASHLOADED", {"action": "run"})]),
    "reboot": ("reboot", (), None, [GUEST_RESET, GUEST_RESET]),
    "reboot-no-reboot": (
        "reboot",
        ("-no-reboot",),
        None,
        [("SHUTDOWN", {"guest": True, "reason": "guest-reset"}), ("STOP", {})],
    ),
    "triplefault-no-reboot": (
        "triplefault",
        ("-no-reboot",),
        None,
        [("SHUTDOWN", {"guest": True, "reason": "guest-reset"}), ("STOP", {})],
    ),
    "suspend-wakeup": (
        "suspend",
        (),
        "system_wakeup",
        [("SUSPEND", {}), ("WAKEUP", {}), GUEST_RESET],
    ),
    "sigterm": ("idle", (), "SIGTERM", [("SHUTDOWN", {"guest": False, "reason": "host-signal"})]),
}


@pytest.mark.parametrize("case", sorted(REAL_CASES))
def test_real_qemu_guest_variants(case: str, tmp_path: Path, images: dict[str, Path]) -> None:
    """Each test guest makes QEMU emit the events the measured facts describe."""
    require_qemu()
    variant, extra, action, cases = REAL_CASES[case]
    expected = list(cases)

    async def main() -> None:
        vm, qmp = await start_guest(images[variant], tmp_path, extra)
        try:
            await vm.wait_for_boot(variant)
            if action == "SIGTERM":
                vm.send_signal(signal.SIGTERM)
            elif action is not None:
                if action == "system_wakeup":  # the S3 entry comes first
                    await expect(qmp, expected[0])
                    expected.pop(0)
                await qmp.execute(action)
            await expect(qmp, *expected)
            await qmp.close()
        finally:
            await vm.kill()

    run(main())
