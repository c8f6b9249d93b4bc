"""One paho-mqtt client driven by the asyncio loop: no network thread.

paho is callback-based and threaded by default; here its socket is watched by the event loop
(``add_reader``/``add_writer``) and its callbacks run on the loop, so publishing, PUBACKs and
reconnects never race each other and nothing crosses a thread per message.  Only the blocking
parts of connecting (TCP, TLS handshake, the websocket upgrade) run on an executor thread;
the socket joins the loop once they are done.

Every failure to connect becomes a :class:`ConnectError` whose message says what to do about
it, and never contains a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ._endpoint import Endpoint

MIDS = 65_535
"""MQTT packet identifiers are 16 bits: paho reuses them after this many, in flight or not."""


def new_properties(packet: int = PacketTypes.PUBLISH) -> Properties:
    """MQTT 5 properties for a packet (paho's constructor is untyped)."""
    return Properties(packet)  # type: ignore[no-untyped-call]


class PackedProperties(Properties):
    """Properties that every message of a kind shares, packed once: paho packs the
    properties of every publish again, and that costs more than the rest of the publish."""

    def __init__(self, source: Properties) -> None:
        super().__init__(source.packetType)  # type: ignore[no-untyped-call]
        object.__setattr__(self, "_packed", source.pack())  # type: ignore[no-untyped-call]
        object.__setattr__(self, "_text", str(source))

    def pack(self) -> bytes:
        packed: bytes = self._packed  # type: ignore[attr-defined]
        return packed

    def __str__(self) -> str:
        text: str = self._text  # type: ignore[attr-defined]
        return text


class ConnectError(ConnectionError):
    """A connection attempt failed; the message says why and what to do."""


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class _LastError(logging.Handler):
    """Keeps paho's last error message: after a TLS 1.3 refusal of a client certificate
    the reason exists only in paho's log."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.message = record.getMessage()


class BufferedSocket:
    """The socket as paho sees it once connected: reads and writes batched.

    paho reads a packet in pieces (its first byte, its length, its body: three system calls
    for every 4-byte acknowledgement) and writes every packet with a call of its own.  This
    reads whatever the kernel holds in one call and hands paho the pieces from memory, and
    gathers what paho writes during one turn of the event loop into one call.  Everything
    else is the socket's own."""

    READ = 262_144

    def __init__(self, sock: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._sock = sock
        self._loop = loop
        self._in = b""
        self._at = 0
        self._out = bytearray()
        self._flushing = False
        self.on_blocked: Callable[[], None] | None = None
        """Called when the kernel takes less than we have: watch for writability."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def recv(self, size: int) -> bytes:
        if self._at >= len(self._in):
            data = self._sock.recv(self.READ)  # BlockingIOError and the like go to paho
            if not data:
                return b""
            self._in, self._at = data, 0
        start = self._at
        self._at = min(start + size, len(self._in))
        return self._in[start : self._at]

    def pending(self) -> int:
        """Bytes read and not yet handed to paho (plus what TLS holds decrypted)."""
        inner = getattr(self._sock, "pending", None)
        return len(self._in) - self._at + (inner() if inner is not None else 0)

    def send(self, data: bytes | bytearray) -> int:
        self._out += data
        if not self._flushing:
            self._flushing = True
            self._loop.call_soon(self.flush)
        return len(data)

    @property
    def unsent(self) -> int:
        return len(self._out)

    def flush(self) -> None:
        self._flushing = False
        out = self._out
        while out:
            try:
                sent = self._sock.send(out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                if self.on_blocked is not None:
                    self.on_blocked()
                return
            except OSError:
                # paho learns of the broken connection from its next read.
                out.clear()
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
                return
            del out[:sent]


class Connection:
    """A paho client on the running loop, with connect, reconnect and publish.

    ``on_connected(session_present)`` runs on every successful (re)connect, before paho
    re-sends what was in flight, so what it publishes goes first; ``on_message`` receives
    subscribed messages; ``on_acked(mid, reason)`` every PUBACK/PUBCOMP (and every QoS 0
    message written)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        client_id: str,
        protocol: str,
        persistent: bool,
        keepalive: int,
        logger: logging.Logger,
        tls: ssl.SSLContext | None = None,
        username: str = "",
        password: str = "",
        will: Will | None = None,
        session_expiry: int = 0,
        connect_timeout: float = 10.0,
        reconnect_max: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.logger = logger
        self.persistent = persistent
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.connect_timeout = connect_timeout
        self.reconnect_max = reconnect_max
        self.v5 = protocol == "5"
        self.on_connected: Callable[[bool], None] | None = None
        self.on_message: Callable[[mqtt.MQTTMessage], None] | None = None
        self.on_acked: Callable[[int, ReasonCode | None], None] | None = None
        self.connected = False
        self.error = ""
        self.error_at = 0.0
        self.connects = 0
        self.disconnects = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: Any = None
        self._attached = False
        self._connack: asyncio.Future[tuple[bool, str]] | None = None
        self._up = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._maintainer: asyncio.Task[None] | None = None
        self._misc: asyncio.Task[None] | None = None
        self._paho_errors = _LastError()

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            transport="websockets" if endpoint.websocket else "tcp",
            clean_session=None if self.v5 else not persistent,
            reconnect_on_failure=False,
        )
        client.suppress_exceptions = True
        paho_log = logging.getLogger(f"{logger.name}.paho")
        paho_log.setLevel(logging.ERROR)
        paho_log.propagate = False
        paho_log.addHandler(self._paho_errors)
        self._paho_log = paho_log
        # Our own window bounds what is outstanding; paho's would rescan its queue on every
        # acknowledgement, and its message ids wrap at 65,535.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.connect_timeout = connect_timeout
        if endpoint.websocket:
            client.ws_set_options(path=endpoint.path or "/mqtt")
        if tls is not None:
            client.tls_set_context(tls)
        if username:
            client.username_pw_set(username, password or None)
        if will is not None:
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message_received
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        self.client = client

    # -- connecting ---------------------------------------------------------------------------

    async def connect(self) -> bool:
        """Connect once; returns whether the broker still had our session.  Raises
        :class:`ConnectError`."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._connack = loop.create_future()
        self._paho_errors.message = ""
        # paho's log says why a TLS peer hung up; once connected it only costs time.
        self.client.enable_logger(self._paho_log)
        properties = None
        if self.v5:
            properties = new_properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry if self.persistent else 0
        clean_start = not self.persistent
        endpoint = self.endpoint
        try:
            await loop.run_in_executor(
                None,
                lambda: self.client.connect(
                    endpoint.host,
                    endpoint.port,
                    keepalive=self.keepalive,
                    clean_start=clean_start if self.v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                    properties=properties,
                ),
            )
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError(_untrusted(endpoint, exc)) from None
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS with {endpoint.address} failed: {_ssl_reason(exc)}") from None
        except (ConnectionResetError, ConnectionAbortedError) as exc:
            hint = "; is it a plain-text port? then use mqtt://" if endpoint.tls else ""
            raise ConnectError(
                f"{endpoint.address} closed the connection at once: {_os_reason(exc)}{hint}"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConnectError(f"cannot connect to {endpoint.address}: {_os_reason(exc)}") from None
        self._attach()
        try:
            present, refusal = await asyncio.wait_for(
                asyncio.shield(self._connack), self.connect_timeout
            )
        except asyncio.TimeoutError:
            self._drop()
            raise ConnectError(
                f"{endpoint.address} did not answer the MQTT connect within "
                f"{self.connect_timeout:g} s{self._transport_hint()}"
            ) from None
        if refusal:
            self._drop()
            raise ConnectError(refusal)
        self.client.disable_logger()
        self.connected = True
        self.connects += 1
        if self.error:
            self.logger.info("MQTT: connected to %s again", endpoint.address)
        self.error = ""
        self._lost.clear()
        self._up.set()
        if self._misc is None or self._misc.done():
            self._misc = loop.create_task(self._housekeeping(), name="mqtt-keepalive")
        return present

    def _attach(self) -> None:
        """The socket joins the loop (connecting happened on an executor thread)."""
        loop, sock = self._loop, self.client.socket()
        if loop is None or sock is None:
            return
        _no_delay(sock)
        if hasattr(self.client, "_sock"):  # paho 1.6-2.x keep their socket here
            buffered = BufferedSocket(sock, loop)
            buffered.on_blocked = self._blocked
            self.client._sock = buffered
            sock = buffered
        self._sock = sock
        loop.add_reader(sock, self._readable)
        self._attached = True
        loop.add_writer(sock, self._writable)  # the CONNECT packet waits in paho's queue

    def _drop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self._detach()

    def _detach(self) -> None:
        loop, sock = self._loop, self._sock
        if loop is not None and sock is not None and self._attached:
            with contextlib.suppress(Exception):
                loop.remove_reader(sock)
            with contextlib.suppress(Exception):
                loop.remove_writer(sock)
        self._attached = False
        self._sock = None

    async def run(self) -> None:
        """Keep connected until :meth:`close`: reconnect with jittered exponential backoff."""
        delay = 0.0
        while not self._closing:
            if not self.connected:
                if delay:
                    await asyncio.sleep(random.uniform(delay / 2, delay))
                try:
                    await self.connect()
                except ConnectError as exc:
                    self._failed(str(exc))
                    delay = min(max(delay * 2, 0.5), self.reconnect_max)
                    continue
            delay = 0.0
            await self._lost.wait()
            if not self._closing:
                delay = 0.25  # a broker that just went away is rarely back at once

    def start(self) -> None:
        """Connect in the background (and reconnect whenever the connection is lost)."""
        if self._maintainer is None or self._maintainer.done():
            self._maintainer = asyncio.get_running_loop().create_task(
                self.run(), name=f"mqtt:{self.endpoint.address}"
            )

    async def wait_up(self) -> None:
        while not self.connected:
            self._up.clear()
            if self.connected:
                return
            await self._up.wait()

    def _failed(self, message: str) -> None:
        if message != self.error:
            self.logger.warning("MQTT: %s (retrying)", message)
        self.error = message
        self.error_at = time.time()

    def _transport_hint(self) -> str:
        detail = self._paho_errors.message
        if detail:
            return f" ({_ssl_text(detail)})"
        return ""

    # -- publishing -----------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> int:
        """Queue one message; returns its packet id (acknowledged through ``on_acked``)."""
        return self.client.publish(topic, payload, qos, retain, properties).mid

    def write_now(self) -> None:
        """Send what paho queued without waiting for the next turn of the loop."""
        if self._attached:
            self._writable()

    def subscribe(self, topics: list[tuple[str, int]]) -> None:
        self.client.subscribe(topics)

    # -- paho callbacks (all on the loop) --------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        future = self._connack
        if reason.is_failure:
            refusal = _refusal(reason, self.endpoint)
            if future is not None and not future.done():
                future.set_result((False, refusal))
            return
        if future is not None and not future.done():
            future.set_result((flags.session_present, ""))
        if self.on_connected is not None:
            self.on_connected(flags.session_present)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self.connected
        self.connected = False
        self._detach()
        future = self._connack
        if future is not None and not future.done():
            future.set_result(
                (
                    False,
                    f"{self.endpoint.address} closed the connection before accepting it"
                    f"{self._transport_hint()}{self._closed_hint()}",
                )
            )
        if was_connected:
            self.disconnects += 1
            if not self._closing:
                why = ""
                if reason is not None and reason.value not in (0, 128):  # 128: just gone
                    why = f" ({reason.getName()})"
                self._failed(f"connection to {self.endpoint.address} lost{why}")
        self._lost.set()

    def _closed_hint(self) -> str:
        if self.endpoint.tls:
            if "client certificate" in self._transport_hint():
                return ""
            return "; does it need a client certificate? set tls_cert and tls_key"
        return "; is it a TLS port? then use mqtts://"

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode | None,
        properties: Properties | None,
    ) -> None:
        if self.on_acked is not None:
            self.on_acked(mid, reason)

    def _on_message_received(self, client: mqtt.Client, userdata: Any, message: Any) -> None:
        if self.on_message is not None:
            self.on_message(message)

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        pass  # connecting runs on an executor thread; the socket joins the loop in _attach

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._detach()

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._attached and self._loop is not None:
            self._loop.add_writer(sock, self._writable)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._attached and self._loop is not None and not getattr(sock, "unsent", 0):
            self._loop.remove_writer(sock)

    def _blocked(self) -> None:
        """The kernel's buffer is full: write the rest when the socket can take it."""
        if self._attached and self._loop is not None and self._sock is not None:
            self._loop.add_writer(self._sock, self._writable)

    def _readable(self) -> None:
        client = self.client
        client.loop_read()
        # TLS may hold decrypted bytes the kernel no longer signals.
        sock = client.socket()
        pending = getattr(sock, "pending", None)
        while sock is not None and pending is not None and pending() > 0:
            if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                break
            sock = client.socket()
            pending = getattr(sock, "pending", None)

    def _writable(self) -> None:
        client, sock = self.client, self._sock
        client.loop_write()
        if isinstance(sock, BufferedSocket):
            sock.flush()
            if not sock.unsent and not client.want_write() and self._loop is not None:
                self._loop.remove_writer(sock)

    async def _housekeeping(self) -> None:
        """Keepalive pings and their time-outs (paho's ``loop_misc``)."""
        while not self._closing:
            await asyncio.sleep(1.0)
            if self.connected:
                self.client.loop_misc()

    # -- closing -------------------------------------------------------------------------------

    async def close(self) -> None:
        self._closing = True
        if self._maintainer is not None:
            self._maintainer.cancel()
            await asyncio.gather(self._maintainer, return_exceptions=True)
        if self.connected:
            with contextlib.suppress(Exception):
                self.client.disconnect()
                self.client.loop_write()
        self.connected = False
        self._detach()
        self._lost.set()
        if self._misc is not None:
            self._misc.cancel()
            await asyncio.gather(self._misc, return_exceptions=True)
        with contextlib.suppress(Exception):
            sock = self.client.socket()
            if sock is not None:
                sock.close()


def _no_delay(sock: Any) -> None:
    """TCP_NODELAY: without it every small publish waits for the previous one's ACK (p99
    ~36 ms on loopback).  The websocket wrapper hides the socket: set it on a duplicate of
    the descriptor, which shares the socket."""
    with (
        contextlib.suppress(OSError, ValueError, AttributeError),
        socket.socket(fileno=os.dup(sock.fileno())) as raw,
    ):
        if raw.family in (socket.AF_INET, socket.AF_INET6):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _refusal(reason: ReasonCode, endpoint: Endpoint) -> str:
    name = reason.getName()
    if reason.value in (4, 5, 134, 135, 140):  # bad user name or password, not authorized
        return (
            f"{endpoint.address} refused the login ({name}): check username and password "
            "(or the client certificate)"
        )
    if reason.value in (2, 133):  # identifier rejected
        return f"{endpoint.address} rejected the client id ({name}): set client_id"
    if reason.value in (1, 132):
        return f"{endpoint.address} does not speak this MQTT version ({name}): set protocol"
    return f"{endpoint.address} refused the connection ({name})"


def _untrusted(endpoint: Endpoint, exc: ssl.SSLCertVerificationError) -> str:
    message = exc.verify_message or str(exc)
    if "mismatch" in message or "match" in message:
        return (
            f"TLS: the certificate of {endpoint.address} is not valid for {endpoint.host!r} "
            f"({message}); connect by a name the certificate has, or set tls_insecure = true"
        )
    return (
        f"TLS: the certificate of {endpoint.address} is not trusted ({message}); set tls_ca "
        "to the CA that signed it"
    )


def _ssl_reason(exc: ssl.SSLError) -> str:
    return _ssl_text(exc.reason or str(exc))


def _ssl_text(text: str) -> str:
    lowered = text.lower()
    if "certificate required" in lowered or "handshake failure" in lowered:
        return f"{text} (the broker wants a client certificate: set tls_cert and tls_key)"
    if "unknown ca" in lowered:
        return f"{text} (the broker does not trust our client certificate)"
    if "wrong version" in lowered or "record layer" in lowered:
        return f"{text} (is it a plain-text port? then use mqtt://)"
    return text


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running, and is the port right?)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
