"""The control socket: ``virtbridge ctl`` and ``virtbridge status`` talk to a running bridge.

A unix socket (mode 0600) under the state directory.  Every connection carries one JSON
request line and gets one JSON reply line.  Peers are checked with ``SO_PEERCRED``: only root
and the user the bridge runs as may talk to it.

Requests::

    {"op": "ctl", "domain": "vm1", "verb": "shutdown"}  → {"ok": true, "events": [...], ...}
    {"op": "status"}                                    → {"ok": true, "status": {...}}
    {"op": "domains"}                                   → {"ok": true, "domains": [...]}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from virtbridge.errors import BridgeNotRunning

log = logging.getLogger("virtbridge.control")

VERBS = ("start", "shutdown", "reboot", "reset", "destroy", "suspend", "resume", "pm-wakeup")
MAX_REQUEST = 64 * 1024

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process on the other end of a unix socket (Linux SO_PEERCRED)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


class ControlServer:
    """Serves control requests for one bridge."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._server: asyncio.AbstractServer | None = None
        self.refused = 0

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket() or self.path.exists():
            if await _alive(self.path):
                raise OSError(f"another bridge is already listening on {self.path}")
            self.path.unlink()
        old = os.umask(0o177)  # the socket is created 0600, never briefly wider
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock) if sock is not None else None
            if uid is not None and uid not in (0, os.geteuid()):
                self.refused += 1
                log.warning("control connection from uid %d refused", uid)
                await _reply(writer, {"ok": False, "error": "permission denied"})
                return
            try:
                line = await asyncio.wait_for(reader.readline(), 10)
            except (asyncio.TimeoutError, ValueError):
                await _reply(writer, {"ok": False, "error": "no request"})
                return
            if len(line) > MAX_REQUEST:
                await _reply(writer, {"ok": False, "error": "request too large"})
                return
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                await _reply(writer, {"ok": False, "error": f"bad request: {exc}"})
                return
            try:
                answer = await self.handler(request)
            except Exception as exc:
                log.exception("control request %r failed", request)
                answer = {"ok": False, "error": f"internal error: {exc}"}
            await _reply(writer, answer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _reply(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
    writer.write(json.dumps(answer, default=str).encode() + b"\n")
    with contextlib.suppress(OSError):
        await writer.drain()


async def _alive(path: Path) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 1)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


async def request(path: Path, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to a running bridge and return its reply."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise BridgeNotRunning(f"cannot reach a bridge at {path}: {exc}") from None
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not line:
        raise BridgeNotRunning(f"the bridge at {path} closed the connection")
    answer: dict[str, Any] = json.loads(line)
    return answer
