"""The metrics server holds up against hostile or broken HTTP clients.

A client that trickles its request head, a crowd of idle connections and oversized request
lines or headers must neither hold the server forever, nor exhaust it, nor raise; the normal
endpoints keep answering throughout.  Most tests run a :class:`MetricsServer` in a thread of
the test process with its default limits (10 s for a request head, 64 connections); the last
one runs a real bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.bridge import TESTKIT, child_env, write_config
from virtbridge.runtime.metrics import MetricsServer

DEADLINE = 10.0
"""The documented time a client gets to send its whole request head."""
MAX_CONNECTIONS = 64
"""The documented number of connections served at once."""


def quiet_status() -> dict[str, Any]:
    return {
        "uptime": 1.0,
        "domains": 0,
        "outbox": {"last_seq": 0},
        "sinks": {},
        "sources": {},
    }


@dataclass
class Served:
    port: int
    errors: list[dict[str, Any]] = field(default_factory=list)
    """What the server's event loop reported as unhandled."""


@pytest.fixture
def served() -> Iterator[Served]:
    loop = asyncio.new_event_loop()
    result = Served(0)
    loop.set_exception_handler(lambda _loop, context: result.errors.append(context))
    server = MetricsServer("127.0.0.1:0", quiet_status)
    thread = threading.Thread(target=loop.run_forever, name="metrics", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    result.port = server.port
    try:
        yield result
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, then read until the server closes (or resets) the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as client:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.sendall(data)
        return read_to_end(client)


def read_to_end(client: socket.socket) -> bytes:
    answer = b""
    while True:
        try:
            chunk = client.recv(65536)
        except ConnectionResetError:
            return answer
        if not chunk:
            return answer
        answer += chunk


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def healthz(port: int) -> bytes:
    return exchange(port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")


def test_a_slowloris_client_is_cut_off_after_the_deadline(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=3) as client:
        started = time.monotonic()
        client.sendall(b"GET /metrics HTTP/1.1\r\n")
        answer = b""
        cut_off = None
        while time.monotonic() - started < DEADLINE + 10:
            try:
                chunk = client.recv(4096)
            except TimeoutError:
                try:
                    client.sendall(b"X-Slow: one more header line every three seconds\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    cut_off = time.monotonic() - started
                    break
                continue
            except ConnectionResetError:
                cut_off = time.monotonic() - started
                break
            if not chunk:
                cut_off = time.monotonic() - started
                break
            answer += chunk
    assert cut_off is not None, "the server kept serving a client that never finished its head"
    assert cut_off < DEADLINE + 4
    assert answer == b"" or status_of(answer) == 408
    assert status_of(healthz(served.port)) == 200
    assert served.errors == []


def test_connections_beyond_the_limit_are_refused_at_once(served: Served) -> None:
    idle = [
        socket.create_connection(("127.0.0.1", served.port), timeout=5)
        for _ in range(MAX_CONNECTIONS)
    ]
    try:
        time.sleep(0.5)  # let the server take every idle connection in
        with socket.create_connection(("127.0.0.1", served.port), timeout=3) as extra:
            started = time.monotonic()
            answer = read_to_end(extra)  # sends nothing: a refusal must not wait for a request
            assert time.monotonic() - started < 2
        assert answer == b"" or status_of(answer) == 503
    finally:
        for client in idle:
            client.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        answer = healthz(served.port)
        if answer and status_of(answer) == 200:
            break
        time.sleep(0.05)
    assert status_of(answer) == 200 and answer.endswith(b"\r\n\r\nok\n")
    assert served.errors == []


def test_a_70_kib_request_line_gets_an_error_and_the_server_keeps_serving(
    served: Served,
) -> None:
    request = b"GET /" + b"a" * (70 * 1024) + b" HTTP/1.1\r\nHost: localhost\r\n\r\n"
    answer = exchange(served.port, request)
    assert status_of(answer) in (400, 414)
    assert status_of(healthz(served.port)) == 200
    assert served.errors == []


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Huge: " + b"h" * (70 * 1024) + b"\r\n",
        b"".join(b"X-Many-%d: header\r\n" % n for n in range(2000)),
    ],
    ids=["one-huge-header", "too-many-headers"],
)
def test_oversized_headers_get_an_error_and_the_server_keeps_serving(
    served: Served, headers: bytes
) -> None:
    answer = exchange(served.port, b"GET /healthz HTTP/1.1\r\n" + headers + b"\r\n")
    assert status_of(answer) in (400, 431)
    assert status_of(healthz(served.port)) == 200
    assert served.errors == []


def test_the_endpoints_still_answer(served: Served) -> None:
    answer = exchange(served.port, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert status_of(answer) == 200 and b"virtbridge_uptime_seconds 1.0" in answer
    assert status_of(exchange(served.port, b"GET /readyz HTTP/1.0\r\n\r\n")) == 200
    assert status_of(exchange(served.port, b"GET /nowhere HTTP/1.1\r\n\r\n")) == 404
    assert status_of(exchange(served.port, b"POST /metrics HTTP/1.1\r\n\r\n")) == 405
    head = exchange(served.port, b"HEAD /healthz HTTP/1.1\r\n\r\n")
    assert status_of(head) == 200 and head.endswith(b"\r\n\r\n")  # a HEAD answer has no body
    assert served.errors == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_running_bridge_answers_a_huge_request_line_and_keeps_serving(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = write_config(
        tmp_path / "bridge.toml",
        state_dir=tmp_path / "state",
        sources=[{"type": "ticker", "interval": 0.05}],
        sinks=[{"type": "null"}],
        outbox="memory",
        metrics=f"127.0.0.1:{port}",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "virtbridge", "run", "-c", str(config), "--plugin", TESTKIT],
        cwd=tmp_path,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = healthz(port)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert status_of(answer) == 200
        huge = b"GET /metrics?" + b"q" * (70 * 1024) + b" HTTP/1.1\r\n\r\n"
        assert status_of(exchange(port, huge)) in (400, 414)
        assert status_of(healthz(port)) == 200
        metrics = exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert (
            status_of(metrics) == 200
            and b'virtbridge_source_signals_total{source="ticker"}' in metrics
        )
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "Unhandled exception" not in err, err[-2000:]
