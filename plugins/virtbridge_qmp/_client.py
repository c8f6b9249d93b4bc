"""An asyncio client for the QEMU Machine Protocol (QMP), standard library only.

QMP is newline-delimited JSON over a stream socket. The server greets with ``{"QMP": {...}}``;
the client answers ``qmp_capabilities``; after that, command replies (``return`` or ``error``,
echoing the command's ``id``) and asynchronous events (``event``) interleave on one stream.

One reader task owns the read side. Whatever the peer sends is data, never a reason to crash: a
line that is not JSON, JSON that is not an object, a line over the size limit, an object of no
known shape, or a stream that ends inside a line is logged on the ``virtbridge.qmp`` logger,
counted in :class:`QmpStats` and skipped. Errors the caller can act on (see ``_errors``) are
raised from the caller's own awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeAlias, TypeVar

from ._errors import QmpCommandError, QmpConnectionError, QmpEof, QmpError, QmpTimeout
from ._framing import LineFramer, Oversized

__all__ = ["DEFAULT_LINE_LIMIT", "EventMessage", "QmpClient", "QmpStats", "QmpTimestamp"]

DEFAULT_LINE_LIMIT: Final = 1 << 20
_READ_CHUNK: Final = 1 << 16
_SHOWN: Final = 120  # how much of a bad line goes into a log record

Address: TypeAlias = "str | os.PathLike[str] | tuple[str, int]"
T = TypeVar("T")


@dataclass(frozen=True)
class QmpTimestamp:
    """QEMU's wall-clock time of an event, as QEMU splits it."""

    seconds: int
    microseconds: int


@dataclass(frozen=True)
class EventMessage:
    """One asynchronous event message as QEMU sent it (the engine's signal for it is
    :class:`virtbridge.QmpEvent`); ``data`` is ``{}`` when QEMU sent none, ``raw`` the whole
    object."""

    name: str
    data: dict[str, Any]
    timestamp: QmpTimestamp
    raw: dict[str, Any]


@dataclass
class QmpStats:
    """Counters kept by the reader: the peer's misbehaviour shows up here, never as an exception."""

    lines: int = 0
    events: int = 0
    replies: int = 0
    invalid_json: int = 0
    not_object: int = 0
    oversized_lines: int = 0
    unknown_messages: int = 0
    unmatched_replies: int = 0
    bad_timestamps: int = 0
    partial_lines: int = 0
    callback_errors: int = 0
    reader_errors: int = 0


@dataclass(frozen=True)
class _End:
    eof: bool  # True: the peer closed the stream; False: we closed it


_QueueItem: TypeAlias = "EventMessage | _End"


class QmpClient:
    """A QMP connection, used as ``async with QmpClient(path) as qmp: ...``.

    ``address`` is a unix socket path or a ``(host, port)`` pair. Events come from :meth:`events`
    or :meth:`next_event` and also go to ``on_event``, which runs in the reader task and must not
    block. ``on_eof`` is called once when the peer closes the stream. Connecting does not retry:
    reconnecting and backing off belong to the owner of the connection.

    ``peer_pid`` (unix sockets only) is the process that must be listening: whoever else
    answers on the path (someone who bound it first, or after the owner unlinked it) is refused
    on its kernel-reported credentials (SO_PEERCRED) before a byte it sent is read, so a forged
    greeting or event is never believed.
    """

    def __init__(
        self,
        address: Address,
        *,
        connect_timeout: float = 5.0,
        line_limit: int = DEFAULT_LINE_LIMIT,
        on_event: Callable[[EventMessage], None] | None = None,
        on_eof: Callable[[], None] | None = None,
        logger: logging.Logger | None = None,
        peer_pid: int | None = None,
    ) -> None:
        if line_limit < 1:
            raise ValueError(f"line_limit must be positive, got {line_limit}")
        if peer_pid is not None and isinstance(address, tuple):
            raise ValueError("peer_pid: only a unix socket tells who is on the other end")
        self._address = address
        self._peer_pid = peer_pid
        self._connect_timeout = connect_timeout
        self._line_limit = line_limit
        self._on_event = on_event
        self._on_eof = on_eof
        self._log = logger or logging.getLogger("virtbridge.qmp")
        self.stats = QmpStats()
        self.greeting: dict[str, Any] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._greeting: asyncio.Future[dict[str, Any]] | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}  # id -> (command, reply)
        self._ids = itertools.count(1)
        self._events: asyncio.Queue[_QueueItem] = asyncio.Queue()
        self._drain_lock = asyncio.Lock()
        self._ended: _End | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> QmpClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def at_eof(self) -> bool:
        """True once the peer has closed the stream."""
        return self._ended is not None and self._ended.eof

    async def connect(self) -> None:
        """Open the socket, read the greeting and negotiate capabilities."""
        if self._writer is not None:
            raise QmpConnectionError("already connected")
        where = self._address
        try:
            if isinstance(where, tuple):
                opening = asyncio.open_connection(where[0], where[1])
            else:
                opening = asyncio.open_unix_connection(os.fspath(where))
            self._reader, self._writer = await _bounded(opening, self._connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            reason = str(exc) or "timed out"
            raise QmpConnectionError(f"cannot connect to QMP at {where!r}: {reason}") from exc
        if self._peer_pid is not None:
            await self._check_peer(self._peer_pid)
        self._greeting = asyncio.get_running_loop().create_future()
        self._reader_task = asyncio.create_task(
            self._read_loop(), name=f"virtbridge.qmp.reader {where!r}"
        )
        try:
            greeting = asyncio.shield(self._greeting)
            self.greeting = await _bounded(greeting, self._connect_timeout)
            await self.execute("qmp_capabilities", timeout=self._connect_timeout)
        except QmpError as exc:
            await self.close()
            if isinstance(exc, QmpConnectionError):
                raise
            raise QmpConnectionError(f"QMP handshake with {where!r} failed: {exc}") from exc
        except asyncio.TimeoutError:
            await self.close()
            raise QmpConnectionError(
                f"no QMP greeting from {where!r} within {self._connect_timeout} s"
            ) from None

    async def _check_peer(self, expected: int) -> None:
        """Refuse (close, log, raise) a listener that is not process ``expected``."""
        assert self._writer is not None
        try:
            pid, uid = _peer_credentials(self._writer)
        except OSError as exc:
            pid, uid = -1, -1
            self._log.warning("QMP %r: cannot learn who is listening: %s", self._address, exc)
        if pid == expected:
            return
        writer, self._writer, self._reader = self._writer, None, None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self._log.warning(
            "QMP %r: refused: the listener is pid %d (uid %d), not the emulator (pid %d)",
            self._address,
            pid,
            uid,
            expected,
        )
        raise QmpConnectionError(
            f"QMP at {self._address!r} is served by pid {pid} (uid {uid}), not pid {expected}"
        )

    async def close(self) -> None:
        """Close the connection. Pending commands fail; :meth:`events` ends after queued events."""
        task, self._reader_task = self._reader_task, None
        try:
            if task is not None:
                task.cancel()
                # Not `await task` under suppress(CancelledError): that would also swallow a
                # cancellation of our caller, which then carries on as if never cancelled.
                await asyncio.wait({task})
                if not task.cancelled() and (error := task.exception()) is not None:
                    raise error
        finally:
            if self._writer is not None:
                self._writer.close()
            self._finish(_End(eof=False), QmpConnectionError("QMP connection closed by the client"))
        if self._writer is not None:
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()

    # -- commands --------------------------------------------------------------------------

    async def execute(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        timeout: float | None = 5.0,
        *,
        fd: int | None = None,
    ) -> Any:
        """Run ``command`` and return its ``return`` value.

        ``fd`` is a file descriptor passed along with the command (SCM_RIGHTS, unix sockets
        only), for ``getfd``: QEMU then writes to a file the caller opened, so no path ever
        goes through a shell.  The caller keeps its own descriptor.

        Raises QmpCommandError for an error reply, QmpTimeout when no reply comes within
        ``timeout`` seconds (None waits forever), QmpEof when the server closes the stream first.
        """
        if self._ended is not None:
            raise self._closed_error(command)
        if self._writer is None:
            raise QmpConnectionError("not connected")
        command_id = f"vb-{next(self._ids)}"
        message: dict[str, Any] = {"execute": command, "id": command_id}
        if arguments is not None:
            message["arguments"] = arguments
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = (command, reply)
        try:
            line = json.dumps(message).encode() + b"\n"
            if fd is None:
                self._writer.write(line)
            else:
                await self._write_with_fd(line, fd, timeout)
            async with self._drain_lock:  # concurrent drain() is unsafe on older Pythons
                await self._writer.drain()
            return await _bounded(reply, timeout)
        except asyncio.TimeoutError:
            raise QmpTimeout(
                f"no reply to {command!r} within {timeout} s", command=command, timeout=timeout
            ) from None
        except OSError as exc:
            raise QmpConnectionError(f"sending {command!r} failed: {exc}") from exc
        finally:
            self._pending.pop(command_id, None)

    async def _write_with_fd(self, line: bytes, fd: int, timeout: float | None) -> None:
        """Send ``line`` with ``fd`` attached to its first byte.

        The descriptor has to travel with the command's own bytes, so the line bypasses the
        transport's buffer: first wait until everything written before it has gone out.
        """
        writer = self._writer
        if writer is None or isinstance(self._address, tuple):
            raise QmpConnectionError("file descriptors pass over unix sockets only")
        transport = writer.transport
        deadline = None if timeout is None else time.monotonic() + timeout
        while transport.get_write_buffer_size():
            if deadline is not None and time.monotonic() > deadline:
                raise asyncio.TimeoutError
            await asyncio.sleep(0.005)
        # A socket object of our own on a duplicate descriptor: asyncio's transport socket
        # offers no sendmsg.
        with socket.socket(fileno=os.dup(writer.get_extra_info("socket").fileno())) as sock:
            try:
                sent = socket.send_fds(sock, [line], [fd])
            except BlockingIOError:
                sent = 0
        if sent == 0:
            raise QmpConnectionError("the QMP socket accepted no data for a file descriptor")
        if sent < len(line):
            writer.write(line[sent:])

    # -- events ----------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[EventMessage]:
        """Yield events in arrival order. Ends quietly after :meth:`close`; raises QmpEof when
        the peer closes the stream, after every event that arrived before the end."""
        while True:
            event = await self._next(None)
            if event is None:
                return
            yield event

    async def next_event(self, timeout: float | None = None) -> EventMessage:
        """The next event. QmpTimeout after ``timeout`` seconds; QmpEof (peer closed) or
        QmpConnectionError (we closed) once no event is left."""
        event = await self._next(timeout)
        if event is None:
            raise QmpConnectionError("the QMP connection is closed")
        return event

    async def _next(self, timeout: float | None) -> EventMessage | None:
        try:
            if timeout is None:
                item = await self._events.get()
            else:
                item = await _bounded(self._events.get(), timeout)
        except asyncio.TimeoutError:
            raise QmpTimeout(
                f"no QMP event within {timeout} s", command=None, timeout=timeout
            ) from None
        if isinstance(item, _End):
            self._events.put_nowait(item)  # the end stays the end for every later caller
            if item.eof:
                raise QmpEof(f"QMP server at {self._address!r} closed the connection")
            return None
        return item

    # -- reader ----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._reader is not None
        framer = LineFramer(self._line_limit)
        try:
            while chunk := await self._reader.read(_READ_CHUNK):
                for line in framer.feed(chunk):
                    if isinstance(line, Oversized):
                        self._oversized(line.size)
                    else:
                        self._handle_line(line)
        except ConnectionResetError:
            # QEMU exiting with unread bytes of ours (the newline after "quit") resets instead of
            # closing: an ordinary end of stream.
            self._log.info("QMP %r: connection reset by the server", self._address)
        except OSError as exc:
            self._log.warning("QMP %r: read failed: %s", self._address, exc)
        if tail := framer.pending:
            self.stats.partial_lines += 1
            self._log.warning("QMP %r: stream ended mid-line: %r", self._address, tail[:_SHOWN])
        self._log.info("QMP %r: end of stream", self._address)
        self._finish(_End(eof=True), QmpEof(f"QMP server at {self._address!r} closed the stream"))
        if self._on_eof is not None:
            try:
                self._on_eof()
            except Exception:  # a user callback must not break the reader
                self.stats.callback_errors += 1
                self._log.exception("QMP %r: on_eof callback failed", self._address)

    def _oversized(self, size: int) -> None:
        self.stats.oversized_lines += 1
        self._log.warning(
            "QMP %r: line over %d bytes (%d seen), discarded up to its newline",
            self._address,
            self._line_limit,
            size,
        )

    def _handle_line(self, line: bytes) -> None:
        if not line.strip():
            return
        self.stats.lines += 1
        try:
            message = json.loads(line)
        except (ValueError, RecursionError) as exc:  # ValueError covers bad UTF-8 as well
            self.stats.invalid_json += 1
            self._log.warning("QMP %r: not JSON (%s): %r", self._address, exc, line[:_SHOWN])
            return
        if not isinstance(message, dict):
            self.stats.not_object += 1
            self._log.warning("QMP %r: JSON but not an object: %r", self._address, line[:_SHOWN])
            return
        try:
            if "event" in message:
                self._handle_event(message)
            elif "return" in message or "error" in message:
                self._handle_reply(message)
            elif "QMP" in message and self._greeting is not None and not self._greeting.done():
                self._greeting.set_result(message)
            else:
                self._unknown(message)
        except Exception:  # a bug here must not end the connection
            self.stats.reader_errors += 1
            self._log.exception("QMP %r: failed to handle %r", self._address, line[:_SHOWN])

    def _unknown(self, message: dict[str, Any]) -> None:
        self.stats.unknown_messages += 1
        self._log.warning("QMP %r: message of unknown shape: %.*r", self._address, _SHOWN, message)

    def _handle_event(self, message: dict[str, Any]) -> None:
        name = message["event"]
        data = message.get("data", {})
        if not isinstance(name, str) or not isinstance(data, dict):
            self._unknown(message)
            return
        timestamp = _parse_timestamp(message.get("timestamp"))
        if timestamp is None:
            self.stats.bad_timestamps += 1
            self._log.warning("QMP %r: %s has no valid timestamp, using ours", self._address, name)
            now_us = time.time_ns() // 1000
            timestamp = QmpTimestamp(now_us // 1_000_000, now_us % 1_000_000)
        self.stats.events += 1
        event = EventMessage(name=name, data=data, timestamp=timestamp, raw=message)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a user callback must not break the reader
                self.stats.callback_errors += 1
                self._log.exception("QMP %r: on_event failed for %s", self._address, name)
        self._events.put_nowait(event)

    def _handle_reply(self, message: dict[str, Any]) -> None:
        command_id = message.get("id")
        pending = self._pending.get(command_id) if isinstance(command_id, str) else None
        if pending is None or pending[1].done():
            # Typically the answer to a command whose caller has already timed out.
            self.stats.unmatched_replies += 1
            self._log.warning(
                "QMP %r: reply for no waiting command: %.*r", self._address, _SHOWN, message
            )
            return
        command, reply = pending
        self.stats.replies += 1
        if "error" not in message:
            reply.set_result(message["return"])
            return
        error = message["error"]
        fields = error if isinstance(error, dict) else {}
        error_class, desc = fields.get("class"), fields.get("desc")
        reply.set_exception(
            QmpCommandError(
                command,
                error_class if isinstance(error_class, str) else "UnknownError",
                desc if isinstance(desc, str) else repr(error),
            )
        )

    def _finish(self, end: _End, error: QmpConnectionError) -> None:
        """Mark the end of the stream, once: fail every waiter and end the event stream."""
        if self._ended is not None:
            return
        self._ended = end
        if self._greeting is not None and not self._greeting.done():
            self._greeting.set_exception(error)
            self._greeting.exception()  # mark retrieved: its waiter may be gone already
        for command, reply in self._pending.values():
            if not reply.done():
                reply.set_exception(type(error)(f"{error} while waiting for {command!r}"))
        self._events.put_nowait(end)

    def _closed_error(self, command: str) -> QmpConnectionError:
        if self.at_eof:
            return QmpEof(f"cannot run {command!r}: the QMP server closed the connection")
        return QmpConnectionError(f"cannot run {command!r}: the QMP connection is closed")


def _peer_credentials(writer: asyncio.StreamWriter) -> tuple[int, int]:
    """(pid, uid) of the process listening on the other end of a unix socket (SO_PEERCRED:
    recorded by the kernel when it called listen(), whatever it claims later)."""
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", raw)
    return int(pid), int(uid)


async def _bounded(awaitable: Awaitable[T], timeout: float | None) -> T:
    """``asyncio.wait_for`` without its flaw before Python 3.12: when what it waits for ends
    just as the caller is cancelled, wait_for returns (or raises) that result and the
    cancellation is lost, so a task being stopped carries on. ``asyncio.wait`` never swallows
    the caller's cancellation."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task})
        raise asyncio.TimeoutError
    return task.result()


def _parse_timestamp(value: object) -> QmpTimestamp | None:
    if not isinstance(value, dict):
        return None
    seconds, microseconds = value.get("seconds"), value.get("microseconds")
    if type(seconds) is not int or type(microseconds) is not int:  # bool is not a time
        return None
    return QmpTimestamp(seconds, microseconds)
