"""A nats-py client with the reconnect behaviour a bridge needs.

* The first connection is tried within ``connect_timeout`` and fails with a sentence that
  says what to do (the sink's worker tries again with jittered backoff); after that nats-py
  reconnects for ever, going round the servers it knows (``reconnect_wait`` between two
  attempts at one server).
* Callbacks never raise: an exception in one would end nats-py's reconnection for good.
* On a disconnect the client's unwritten buffer is dropped: what was in it goes again from
  the first unacknowledged event, in order, instead of being flushed ahead of that.
* Secrets never appear in a message: only host and port are named.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
from nats.aio.client import Client

AUTH_ERRORS = ("authorization violation", "authentication", "user authentication expired")


def _telling(exc: BaseException | None) -> bool:
    """Whether an error says why a connection failed (rather than how it ended)."""
    if exc is None:
        return False
    text = str(exc).lower()
    return isinstance(exc, (ssl.SSLError, nats.errors.AuthorizationError)) or any(
        marker in text for marker in AUTH_ERRORS
    )


class ConnectError(ConnectionError):
    """The connection failed; the message says why and what to do."""


def addresses(servers: Sequence[str]) -> str:
    return ", ".join(f"{urlsplit(url).hostname}:{urlsplit(url).port or 4222}" for url in servers)


def explain(exc: BaseException | None, servers: Sequence[str]) -> str:
    """A sentence for a failed connection attempt."""
    where = addresses(servers)
    if exc is None:
        return f"cannot connect to {where}"
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if any(marker in lowered for marker in AUTH_ERRORS) or isinstance(
        exc, nats.errors.AuthorizationError
    ):
        return (
            f"{where} refused the login ({text.strip()}): check user, password, token or "
            "credentials"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or text
        if "mismatch" in message or "match" in message:
            return (
                f"TLS: the certificate of {where} is not valid for that name ({message}); "
                "connect by a name the certificate has, or set tls_insecure = true"
            )
        return (
            f"TLS: the certificate of {where} is not trusted ({message}); set tls_ca to the "
            "CA that signed it"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {where} failed: {exc.reason or text}"
    if "tls" in lowered and ("required" in lowered or "handshake" in lowered):
        return f"{where}: {text} (the server wants TLS: use tls:// and set tls_ca)"
    if isinstance(exc, ConnectionRefusedError) or "connect call failed" in lowered:
        return (
            f"cannot connect to {where}: connection refused (is nats-server running, and is "
            "the port right?)"
        )
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"cannot connect to {where}: timed out"
    return f"cannot connect to {where}: {text}"


class Connection:
    """One nats-py client, kept connected."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        name: str,
        logger: logging.Logger,
        tls: ssl.SSLContext | None = None,
        user: str = "",
        password: str = "",
        token: str = "",
        nkey_seed: str = "",
        credentials: str = "",
        reconnect_buffer: int = 8 * 1024 * 1024,
        reconnect_wait: float = 0.5,
        connect_timeout: float = 5.0,
    ) -> None:
        self.servers = list(servers)
        self.name = name
        self.logger = logger
        self.tls = tls
        self.auth: dict[str, Any] = {}
        if user:
            self.auth.update(user=user, password=password or None)
        if token:
            self.auth["token"] = token
        if nkey_seed:
            self.auth["nkeys_seed"] = nkey_seed
        if credentials:
            self.auth["user_credentials"] = credentials
        self.reconnect_buffer = reconnect_buffer
        self.reconnect_wait = reconnect_wait
        self.connect_timeout = connect_timeout
        self.nc: Client | None = None
        self.error = ""
        self.error_at = 0.0
        self.disconnects = 0
        self.on_disconnected: Callable[[], None] | None = None
        self._last_exc: BaseException | None = None
        self._last_server = ""
        self._up = asyncio.Event()
        self._closing = False

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    def addresses(self) -> str:
        return addresses(self.servers)

    @property
    def buffered(self) -> int:
        """Bytes waiting in the client's reconnect buffer."""
        nc = self.nc
        return int(getattr(nc, "pending_data_size", 0) or 0) if nc is not None else 0

    async def connect(self) -> Client:
        """Connect once (raises :class:`ConnectError`); afterwards reconnect for ever."""
        self._last_exc = None
        options: dict[str, Any] = {
            "servers": self.servers,
            "name": self.name,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": self.reconnect_wait,
            "connect_timeout": self.connect_timeout,
            "pending_size": self.reconnect_buffer,
            **self.auth,
        }
        if self.tls is not None:
            options["tls"] = self.tls
        self._last_exc = None
        client = Client()
        attempt = asyncio.ensure_future(client.connect(**options))
        try:
            await asyncio.wait_for(asyncio.shield(attempt), self.connect_timeout)
        except (asyncio.TimeoutError, Exception) as exc:
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            with contextlib.suppress(BaseException):
                await client.close()
            cause = self._last_exc or (None if isinstance(exc, asyncio.TimeoutError) else exc)
            if cause is None and isinstance(exc, asyncio.TimeoutError):
                cause = exc
            raise ConnectError(explain(cause, self.servers)) from None
        self.nc = client
        self._server()
        if self.error:
            self.logger.info("NATS: connected to %s again", self._server())
        self.error = ""
        self._up.set()
        return client

    def _server(self) -> str:
        """The server the client is (or was last) connected to."""
        nc = self.nc
        current = getattr(nc, "connected_url", None) if nc is not None else None
        if current is not None:
            self._last_server = f"{current.hostname}:{current.port}"
        return self._last_server or addresses(self.servers)

    async def wait_up(self) -> None:
        while not self.connected:
            self._up.clear()
            if self.connected:
                return
            await self._up.wait()

    def _failed(self, message: str) -> None:
        if message != self.error:
            self.logger.warning("NATS: %s (retrying)", message)
        self.error = message
        self.error_at = time.time()

    # -- callbacks: they must never raise --------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        with contextlib.suppress(Exception):
            # A refused login or a TLS failure says more than the broken pipe that follows.
            if not (_telling(self._last_exc) and not _telling(exc)):
                self._last_exc = exc
            if self.nc is None or self._closing:
                return  # the first connection reports its own failure
            if isinstance(exc, (ConnectionRefusedError, ssl.SSLError)) or not self.connected:
                self._failed(explain(exc, self.servers))
            else:
                self._failed(f"{self._server()}: {exc or type(exc).__name__}")

    async def _on_disconnected(self) -> None:
        with contextlib.suppress(Exception):
            nc = self.nc
            if nc is not None and not self._closing:
                self.disconnects += 1
                # What the client had not written yet would go out first after reconnecting,
                # ahead of the events before it that the broker never got: drop it, the
                # worker sends everything again from the first unacknowledged event.
                if hasattr(nc, "_pending") and hasattr(nc, "_pending_data_size"):
                    nc._pending = []
                    nc._pending_data_size = 0
                self._failed(f"connection to {self._server()} lost")
            if self.on_disconnected is not None:
                self.on_disconnected()

    async def _on_reconnected(self) -> None:
        with contextlib.suppress(Exception):
            self.logger.info("NATS: reconnected to %s", self._server())
            self.error = ""
            self._up.set()

    async def _on_closed(self) -> None:
        with contextlib.suppress(Exception):
            if not self._closing:
                self._failed("the connection was closed")

    async def close(self) -> None:
        self._closing = True
        nc, self.nc = self.nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)
