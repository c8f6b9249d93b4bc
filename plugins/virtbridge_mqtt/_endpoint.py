"""Where the broker is: ``mqtt://``, ``mqtts://``, ``ws://`` or ``wss://`` URLs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = {
    "mqtt": (False, False, 1883),
    "mqtts": (True, False, 8883),
    "ws": (False, True, 80),
    "wss": (True, True, 443),
}
"""scheme → (TLS, websocket, default port)."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    tls: bool
    websocket: bool
    path: str = ""
    """The websocket path (ws:// and wss://), or a topic prefix (``virtbridge tail``)."""

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Raises ValueError with a message naming what is wrong (never the URL's password)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError(
                f"unsupported scheme {parts.scheme + '://' if parts.scheme else '(none)'}: "
                "use mqtt://, mqtts://, ws:// or wss://"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError("put the user name and password in username/password, not the URL")
        tls, websocket, default_port = SCHEMES[scheme]
        try:
            port = parts.port or default_port
        except ValueError:
            raise ValueError("the port is not a number from 1 to 65535") from None
        if not parts.hostname:
            raise ValueError("no host name")
        return cls(
            parts.hostname,
            port,
            tls,
            websocket,
            parts.path.strip("/") if not websocket else parts.path,
        )
