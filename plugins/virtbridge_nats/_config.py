"""The ``[[sinks]] type = "nats"`` table."""

from __future__ import annotations

import re
import ssl
from typing import Literal
from urllib.parse import urlsplit

import virtbridge

SCHEMES = ("nats", "tls", "ws", "wss")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def seconds(text: str, key: str) -> float:
    """``"2m"``, ``"90s"``, ``"1h"``, ``"500ms"`` or a number of seconds."""
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f'{key}: expected a duration such as "2m", "90s" or "1h", got {text!r}')
    return float(found.group(1)) * _UNITS[found.group(2)]


def check_prefix(prefix: str, key: str) -> None:
    if not prefix:
        raise ValueError(f"{key}: must not be empty")
    tokens = prefix.split(".")
    if any(not token for token in tokens):
        raise ValueError(f"{key}: must not have an empty token (a leading, trailing or double .)")
    if any(char in prefix for char in "*> \t\r\n"):
        raise ValueError(f"{key}: must not contain *, > or white space (NATS wildcards)")


class NatsConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    servers: str | list[str] = "nats://127.0.0.1:4222"
    """One URL or a list (nats://, tls://, ws://, wss://); give every node of a cluster."""
    subject_prefix: str = "virtbridge"
    stream: str = ""
    """A JetStream stream: publish with acknowledgements and Nats-Msg-Id.  Empty: core NATS
    (at most once)."""
    create_stream: bool = False
    """Create the stream (and the state bucket) if missing, or add what it lacks; without it
    they are used as they are."""
    replicas: int = 1
    duplicate_window: str = "2m"
    state_bucket: str | None = None
    """JetStream key-value bucket with every domain's state (default: virtbridge_state with a
    stream, none without; "" turns it off)."""
    user: str = ""
    password: str = ""
    token: str = ""
    nkey_seed: str = ""
    """An nkey seed file."""
    credentials: str = ""
    """A credentials (JWT) file."""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_insecure: bool = False
    """Accept a server certificate whose name does not match (its chain is still verified)."""
    content_mode: Literal["structured", "binary"] = "structured"
    """structured: the CloudEvent as the payload; binary: data as the payload, attributes as
    ce- headers (the CloudEvents NATS binding)."""
    batch_size: int = 256
    max_inflight: int = 1000
    """Events published and not acknowledged yet, at most."""
    ack_timeout: float = 5.0
    """Seconds to wait for JetStream's acknowledgements before sending again."""
    reconnect_buffer: int = 8 * 1024 * 1024
    """Bytes the client keeps while reconnecting (then publishing waits)."""
    reconnect_wait: float = 0.5
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        super().__post_init__()
        servers = [self.servers] if isinstance(self.servers, str) else self.servers
        if not servers:
            raise ValueError("servers: give at least one URL")
        for url in servers:
            parts = urlsplit(url)
            if parts.scheme not in SCHEMES:
                raise ValueError(
                    f"servers: {parts.scheme + '://' if parts.scheme else url!r} is not a NATS "
                    "URL (nats://, tls://, ws://, wss://)"
                )
            if parts.username or parts.password:
                raise ValueError("servers: put credentials in user/password/token, not the URL")
            if not parts.hostname:
                raise ValueError(f"servers: {url!r} has no host")
        check_prefix(self.subject_prefix, "subject_prefix")
        seconds(self.duplicate_window, "duplicate_window")
        if self.stream and any(char in self.stream for char in ".*> \t"):
            raise ValueError("stream: a stream name cannot contain . * > or white space")
        bucket = self.bucket
        if bucket and not re.fullmatch(r"[A-Za-z0-9_-]+", bucket):
            raise ValueError("state_bucket: letters, digits, _ and - only")
        if not 1 <= self.replicas <= 5:
            raise ValueError("replicas: must be from 1 to 5")
        if self.create_stream and not self.stream:
            raise ValueError("create_stream: needs stream")
        if self.password and not self.user:
            raise ValueError("password: needs user")
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_key: needs tls_cert")
        if not 1 <= self.max_inflight <= 20_000:
            raise ValueError("max_inflight: must be from 1 to 20000")
        for key in ("ack_timeout", "reconnect_wait", "connect_timeout"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: must be positive")

    @property
    def server_list(self) -> list[str]:
        return [self.servers] if isinstance(self.servers, str) else list(self.servers)

    @property
    def bucket(self) -> str:
        if self.state_bucket is None:
            return "virtbridge_state" if self.stream else ""
        return self.state_bucket

    @property
    def window_seconds(self) -> float:
        return seconds(self.duplicate_window, "duplicate_window")

    def tls_context(self) -> ssl.SSLContext | None:
        wants = any(urlsplit(url).scheme in ("tls", "wss") for url in self.server_list)
        if not (wants or self.tls_ca or self.tls_cert):
            return None
        return virtbridge.tls_context(
            self.tls_ca, self.tls_cert, self.tls_key, insecure=self.tls_insecure
        )
