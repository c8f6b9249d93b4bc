"""Prometheus metrics, ``/healthz`` and ``/readyz`` over a minimal HTTP/1.1 server.

``GET /metrics``: the figures ``virtbridge status`` shows, in the Prometheus text format.
``GET /healthz``: 200 while the bridge's event loop answers.
``GET /readyz``: 200 when every sink is connected and the outbox stores events; 503 (with the
reasons) otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("virtbridge.metrics")

HEAD_TIMEOUT = 10.0
"""Seconds a client gets to send its whole request head, however it trickles it."""
WRITE_TIMEOUT = 10.0
"""Seconds an answer may take to leave (a client that does not read is dropped)."""
MAX_CONNECTIONS = 64
"""Connections served at once; scrapers and probes need a handful."""
MAX_LINE = 8 * 1024
"""Longest request line or header line, in bytes."""
MAX_HEAD = 32 * 1024
"""Longest request head (request line and headers), in bytes."""
MAX_HEADERS = 100
"""Most header lines in one request."""
LINGER_TIME = 2.0
LINGER_BYTES = 1024 * 1024
"""After an error answer, how long and how much of the rest of the request is read and
dropped so that the client gets the answer instead of a reset."""


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(status: dict[str, Any]) -> str:
    """The Prometheus text exposition of a bridge status."""
    lines: list[str] = []

    def metric(
        name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]
    ) -> None:
        lines.append(f"# HELP virtbridge_{name} {help_text}")
        lines.append(f"# TYPE virtbridge_{name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
            lines.append(
                f"virtbridge_{name}{{{text}}} {value}" if text else f"virtbridge_{name} {value}"
            )

    outbox = status["outbox"]
    sinks = status["sinks"]
    sources = status["sources"]
    metric("uptime_seconds", "gauge", "Seconds since the bridge started.", [({}, status["uptime"])])
    metric("domains", "gauge", "Domains the engine tracks.", [({}, status["domains"])])
    metric(
        "outbox_last_sequence",
        "gauge",
        "Sequence number of the newest event.",
        [({}, outbox["last_seq"])],
    )
    metric(
        "outbox_durable_sequence",
        "gauge",
        "Newest event stored durably.",
        [({}, outbox.get("durable_seq", outbox["last_seq"]))],
    )
    metric(
        "outbox_stored_events",
        "gauge",
        "Events held in the outbox.",
        [({}, outbox.get("stored", outbox.get("held", 0)))],
    )
    metric(
        "outbox_degraded",
        "gauge",
        "1 while the outbox cannot store (disk full).",
        [({}, int(bool(outbox.get("degraded"))))],
    )
    metric(
        "outbox_overflow_warnings_total",
        "counter",
        "Times the outbox was over its size limit.",
        [({}, outbox.get("overflow_warnings", 0))],
    )
    per_sink = [
        ("sink_cursor", "gauge", "Last event the sink committed.", "cursor"),
        ("sink_lag", "gauge", "Events the sink has not delivered yet.", "lag"),
        ("sink_delivered_total", "counter", "Events delivered.", "delivered"),
        ("sink_retries_total", "counter", "Failed publish attempts retried.", "retries"),
        ("sink_dropped_total", "counter", "Events dropped by overflow = drop-oldest.", "dropped"),
        ("sink_rejected_total", "counter", "Events the broker refused for good.", "rejected"),
    ]
    for name, kind, help_text, key in per_sink:
        metric(
            name, kind, help_text, [({"sink": sink}, values[key]) for sink, values in sinks.items()]
        )
    metric(
        "sink_connected",
        "gauge",
        "1 when the sink's last attempt succeeded.",
        [({"sink": sink}, int(values["connected"])) for sink, values in sinks.items()],
    )
    metric(
        "source_signals_total",
        "counter",
        "Signals fed to the engine.",
        [({"source": source}, values["signals"]) for source, values in sources.items()],
    )
    metric(
        "source_events_total",
        "counter",
        "Events the source's signals caused.",
        [({"source": source}, values["events"]) for source, values in sources.items()],
    )
    errors = []
    for key, count in status.get("plugin_errors", {}).items():
        plugin, _, hook = key.rpartition(":")
        errors.append(({"plugin": plugin, "hook": hook}, count))
    metric("plugin_errors_total", "counter", "Hook calls that raised.", errors)
    return "\n".join(lines) + "\n"


def not_ready(status: dict[str, Any]) -> list[str]:
    reasons = [
        f"sink {name} is not connected"
        for name, sink in status["sinks"].items()
        if not sink["connected"]
    ]
    if status["outbox"].get("degraded"):
        reasons.append(f"the outbox cannot store events: {status['outbox'].get('error', '')}")
    return reasons


@dataclass(frozen=True)
class _Request:
    method: str
    path: str


@dataclass(frozen=True)
class _Refusal:
    """A request the server answers with an error instead of serving it."""

    status: str
    text: str


class MetricsServer:
    """The HTTP endpoint of one bridge.

    Whoever can reach the port can talk to it, so no client may hold it: a request head must
    arrive whole within ``head_timeout`` seconds (a client trickling header lines is cut off
    with 408), at most ``max_connections`` are served at once (the next ones get 503 at once,
    without waiting for their request), and a request line or header longer than
    ``max_line`` bytes, a head longer than ``max_head`` or with more than ``max_headers``
    lines is answered 414 or 431.
    """

    def __init__(
        self,
        address: str,
        status: Callable[[], dict[str, Any]],
        *,
        head_timeout: float = HEAD_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_line: int = MAX_LINE,
        max_head: int = MAX_HEAD,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.status = status
        self.head_timeout = head_timeout
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        self.max_line = max_line
        self.max_head = max_head
        self.max_headers = max_headers
        self.active = 0
        self.refused = 0
        """Connections answered 503 because ``max_connections`` were being served."""
        self._saturated = False
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        # The stream's buffer limit is the longest line: readline() then fails as soon as a
        # line outgrows it instead of buffering whatever a client sends.
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=self.max_line
        )
        for sock in self._server.sockets:
            self.port = sock.getsockname()[1]
            break
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_connections:
            self._refuse(writer)
            return
        self.active += 1
        try:
            await self._exchange(reader, writer)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the client went away, or does not read its answer
        except Exception:  # one connection must never take the endpoint down
            log.exception("metrics request failed")
        finally:
            self.active -= 1
            if self.active < self.max_connections:
                self._saturated = False
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self.write_timeout)

    def _refuse(self, writer: asyncio.StreamWriter) -> None:
        """Turn a connection away without reading from it, so a crowd of idle connections
        costs nothing but the accept."""
        self.refused += 1
        if not self._saturated:
            self._saturated = True
            log.warning(
                "metrics: %d connections open, refusing more until some close",
                self.max_connections,
            )
        try:
            writer.write(_response("503 Service Unavailable", b"too many connections\n"))
        finally:
            writer.close()  # the short answer is flushed before the socket closes

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(self._read_head(reader), self.head_timeout)
        except asyncio.TimeoutError:
            await self._send(writer, _response("408 Request Timeout", b"request too slow\n"))
            return
        if request is None:
            return  # the client closed before sending a request
        if isinstance(request, _Refusal):
            await self._send(writer, _response(request.status, request.text.encode()))
            await self._linger(reader, writer)
            return
        code, body, kind = self._answer(request.method, request.path)
        await self._send(writer, _response(code, body, kind, head_only=request.method == "HEAD"))

    async def _read_head(self, reader: asyncio.StreamReader) -> _Request | _Refusal | None:
        """Read a request line and its headers, within the size limits; the headers are
        counted and skipped (nothing here needs them)."""
        size = 0
        line = b""
        while not line.strip():  # RFC 9112 2.2: empty lines before the request line
            try:
                line = await reader.readline()
            except ValueError:
                return _Refusal("414 URI Too Long", "request line too long\n")
            if not line:
                return None
            size += len(line)
            if size > self.max_head:
                return _Refusal("400 Bad Request", "no request line\n")
        parts = line.decode("latin-1").split()
        if len(parts) not in (2, 3) or (len(parts) == 3 and not parts[2].startswith("HTTP/")):
            return _Refusal("400 Bad Request", "malformed request line\n")
        headers = 0
        while True:
            try:
                line = await reader.readline()
            except ValueError:
                return _Refusal("431 Request Header Fields Too Large", "header too long\n")
            if not line:
                return None  # the client closed in the middle of its head
            if not line.strip():
                break
            size += len(line)
            headers += 1
            if size > self.max_head or headers > self.max_headers:
                return _Refusal("431 Request Header Fields Too Large", "too many headers\n")
        return _Request(parts[0], parts[1].split("?", 1)[0])

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), self.write_timeout)

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """After refusing a request that is still arriving, read (and drop) the rest for a
        moment before closing: closing with unread data makes the kernel reset the
        connection, and the client would lose the answer that says why."""
        if writer.can_write_eof():
            writer.write_eof()
        deadline = asyncio.get_running_loop().time() + LINGER_TIME
        dropped = 0
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
            while dropped < LINGER_BYTES:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                chunk = await asyncio.wait_for(reader.read(65536), left)
                if not chunk:
                    break
                dropped += len(chunk)

    def _answer(self, method: str, path: str) -> tuple[str, bytes, str]:
        text = "text/plain; charset=utf-8"
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", b"GET only\n", text
        if path == "/metrics":
            return (
                "200 OK",
                render(self.status()).encode(),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        if path == "/healthz":
            return "200 OK", b"ok\n", text
        if path == "/readyz":
            reasons = not_ready(self.status())
            if reasons:
                return "503 Service Unavailable", ("\n".join(reasons) + "\n").encode(), text
            return "200 OK", b"ready\n", text
        return "404 Not Found", b"try /metrics, /healthz or /readyz\n", text


def _response(
    status: str,
    body: bytes,
    kind: str = "text/plain; charset=utf-8",
    *,
    head_only: bool = False,
) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + (b"" if head_only else body)
