"""Fake QMP monitors: unix sockets that speak like an idle, running QEMU.

Each greets, answers ``qmp_capabilities``, ``query-name`` (the socket's name), ``query-uuid``
and ``query-status`` (running), refuses anything else as QEMU does, and can send events with
a QMP timestamp taken as they are written, to every client that finished the handshake.
Used where starting real guests would cost more than what is measured: the bridge's memory
per watched monitor, and the latency from QEMU's timestamp to a sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

GREETING = (
    b'{"QMP": {"version": {"qemu": {"major": 8, "minor": 2, "micro": 0}, "package": ""}, '
    b'"capabilities": []}}\r\n'
)
NO_UUID = "00000000-0000-0000-0000-000000000000"


class FakeMonitors:
    """``directory/<name>.qmp`` for each name; :meth:`emit` sends an event on all of them."""

    def __init__(self, directory: Path, names: Sequence[str]) -> None:
        self.directory = directory
        self.names = list(names)
        self.servers: list[asyncio.AbstractServer] = []
        self.handlers: set[asyncio.Task[Any]] = set()
        self.ready: set[asyncio.StreamWriter] = set()
        """Clients that asked ``query-status`` (the bridge's handshake is done)."""
        self.changed = asyncio.Event()

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.qmp"

    async def start(self) -> FakeMonitors:
        for name in self.names:
            server = await asyncio.start_unix_server(self._server_for(name), str(self.path(name)))
            self.servers.append(server)
        return self

    def _server_for(
        self, name: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(name, reader, writer)

        return serve

    async def _serve(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        task.add_done_callback(self.handlers.discard)
        answers: dict[str, Any] = {
            "qmp_capabilities": {},
            "query-name": {"name": name},
            "query-uuid": {"UUID": NO_UUID},
            "query-status": {"status": "running", "singlestep": False, "running": True},
        }
        writer.write(GREETING)
        with contextlib.suppress(OSError, ValueError):
            while line := await reader.readline():
                command = json.loads(line)
                what = command.get("execute")
                reply: dict[str, Any] = (
                    {"return": answers[what]}
                    if what in answers
                    else {"error": {"class": "CommandNotFound", "desc": f"{what} not found"}}
                )
                if "id" in command:
                    reply["id"] = command["id"]
                writer.write(json.dumps(reply).encode() + b"\r\n")
                await writer.drain()
                if what == "query-status" and writer not in self.ready:
                    self.ready.add(writer)
                    self.changed.set()
        self.ready.discard(writer)
        self.changed.set()
        writer.close()

    async def wait_ready(self, count: int, timeout: float) -> None:
        """Until ``count`` clients have done the handshake (TimeoutError after ``timeout``)."""

        async def enough() -> None:
            while len(self.ready) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(enough(), timeout)

    def emit(self, event: str, data: dict[str, Any] | None = None) -> float:
        """Send ``event`` now, stamped with the wall clock as QEMU does; returns the stamp."""
        now = time.time()
        seconds = int(now)
        message: dict[str, Any] = {
            "event": event,
            "timestamp": {"seconds": seconds, "microseconds": int((now - seconds) * 1e6)},
        }
        if data is not None:
            message["data"] = data
        line = json.dumps(message).encode() + b"\r\n"
        for writer in self.ready:
            writer.write(line)
        return seconds + int((now - seconds) * 1e6) / 1e6

    async def close(self, timeout: float = 5.0) -> None:
        for server in self.servers:
            server.close()
        for writer in list(self.ready):
            writer.close()
        if self.handlers:
            await asyncio.wait(set(self.handlers), timeout=timeout)
