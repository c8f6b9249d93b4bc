"""The ``[[sinks]] type = "mqtt"`` table."""

from __future__ import annotations

import ssl
from typing import Literal

import virtbridge

from ._endpoint import Endpoint
from ._topics import check_prefix


class MqttConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    url: str = "mqtt://127.0.0.1:1883"
    """mqtt://HOST[:PORT], mqtts:// (TLS), ws://HOST[:PORT]/PATH or wss://."""
    qos: Literal[0, 1, 2] = 1
    """1 (default) and 2: every event is acknowledged by the broker before the sink's cursor
    moves; 0: at most once (nothing is retried)."""
    topic_prefix: str = "virtbridge"
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str = ""
    """Default: virtbridge-<host>.  With qos > 0 the broker keeps this client's session."""
    username: str = ""
    password: str = ""
    tls_ca: str = ""
    """CA certificates to trust (PEM file); default: the system's."""
    tls_cert: str = ""
    """Client certificate (PEM) for brokers that require one; with tls_key."""
    tls_key: str = ""
    tls_insecure: bool = False
    """Accept a certificate whose name does not match the host (its chain is still verified)."""
    retain_state: bool = True
    """Keep every domain's current state retained on <prefix>/<host>/domain/<name>/state."""
    homeassistant: bool = False
    """Home Assistant MQTT discovery: every domain a device with a state sensor."""
    homeassistant_prefix: str = "homeassistant"
    keepalive: int = 30
    """Seconds between pings; the broker sends the last will after 1.5 times this."""
    session_expiry: int = 3600
    """MQTT 5, qos > 0: seconds the broker keeps the session after a disconnect."""
    message_expiry: int = 0
    """MQTT 5: seconds the broker keeps an event for subscribers that are away (0: for ever)."""
    content_mode: Literal["structured", "binary"] = "structured"
    """structured: the whole CloudEvent as the payload (JSON); binary (MQTT 5 only): the
    event's data as the payload and its attributes as user properties."""
    batch_size: int = 256
    max_inflight: int = 1000
    """Events published and not acknowledged yet, at most (well below MQTT's 65,535 ids)."""
    connect_timeout: float = 10.0
    reconnect_max: float = 30.0
    """Longest wait between reconnection attempts (backoff doubles up to it, with jitter)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            endpoint = Endpoint.parse(self.url)
        except ValueError as exc:
            raise ValueError(f"url: {exc}") from None
        check_prefix(self.topic_prefix, "topic_prefix")
        check_prefix(self.homeassistant_prefix, "homeassistant_prefix")
        if not endpoint.tls:
            for key in ("tls_ca", "tls_cert", "tls_key"):
                if getattr(self, key):
                    raise ValueError(
                        f"{key}: set, but url is {self.url.split(':', 1)[0]}:// (no TLS); use "
                        "mqtts:// or wss://"
                    )
            if self.tls_insecure:
                raise ValueError("tls_insecure: set, but url has no TLS (mqtts:// or wss://)")
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_key: needs tls_cert (the client certificate)")
        if self.password and not self.username:
            raise ValueError("password: needs username")
        if self.homeassistant and not self.retain_state:
            raise ValueError(
                "homeassistant: needs retain_state = true (discovery goes out with the "
                "retained states)"
            )
        if self.protocol != "5":
            if self.content_mode == "binary":
                raise ValueError('content_mode: "binary" needs protocol = "5"')
            if self.message_expiry:
                raise ValueError('message_expiry: needs protocol = "5"')
        if not 1 <= self.max_inflight <= 20_000:
            raise ValueError("max_inflight: must be from 1 to 20000")
        if self.batch_size < 1:
            raise ValueError("batch_size: must be at least 1")
        if self.keepalive < 5:
            raise ValueError("keepalive: must be at least 5 seconds")
        if self.connect_timeout <= 0 or self.reconnect_max <= 0:
            raise ValueError("connect_timeout and reconnect_max: must be positive")
        if self.message_expiry < 0 or self.session_expiry < 0:
            raise ValueError("message_expiry and session_expiry: must not be negative")

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint.parse(self.url)

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS settings, loaded now so a missing or unreadable file is reported at start."""
        if not self.endpoint.tls:
            return None
        return virtbridge.tls_context(
            self.tls_ca, self.tls_cert, self.tls_key, insecure=self.tls_insecure
        )
