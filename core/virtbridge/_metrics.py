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
from typing import Any

log = logging.getLogger("virtbridge.metrics")


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


class MetricsServer:
    def __init__(self, address: str, status: Callable[[], dict[str, Any]]) -> None:
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self.status = status
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        for sock in self._server.sockets:
            self.port = sock.getsockname()[1]
            break
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)).strip():
                pass  # headers: nothing here needs them
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else "/"
            code, body, kind = self._answer(parts[0] if parts else "", path)
            head = (
                f"HTTP/1.1 {code}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

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
