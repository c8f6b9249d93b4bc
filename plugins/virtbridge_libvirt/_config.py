"""The ``[[sources]]`` table of a libvirt source."""

from __future__ import annotations

import msgspec

import virtbridge

from ._binding import available


class LibvirtConfig(virtbridge.PluginConfig, kw_only=True, forbid_unknown_fields=True):
    uri: str = "qemu:///system"
    """Any libvirt connection URI (``qemu:///system``, ``qemu+ssh://host/system``, ...)."""
    allow_commands: bool = False
    """False: a read-only connection, and ``virtbridge ctl`` verbs are refused.  True: a
    read-write connection, and the verbs call libvirt's API (start, shutdown, destroy, ...)."""
    keepalive_interval: int = 5
    """Seconds between keepalive probes (0: none); libvirt's own clients use 5."""
    keepalive_count: int = 3
    """Unanswered probes after which the connection counts as dead."""
    reconnect_min: float = 0.5
    """First wait before reconnecting after the connection was lost (then doubling, with
    jitter, up to ``reconnect_max``)."""
    reconnect_max: float = 10.0
    """Longest wait between two reconnection attempts: libvirtd being down for a minute is a
    lag of at most this much after it is back."""
    look_again: list[float] = msgspec.field(default_factory=lambda: [1.0, 5.0])
    """Seconds after each (re)connection at which every domain is listed again: a restarted
    libvirtd reconnects to its QEMUs in threads while it already answers, so it can briefly
    list a domain whose QEMU died as running."""
    call_timeout: float = 30.0
    """Seconds one call into libvirt may take (open, list, a ``ctl`` verb) before it is
    given up (the call itself may still finish in its thread)."""

    def __post_init__(self) -> None:
        if not self.uri:
            raise ValueError("uri: must be a libvirt connection URI")
        if self.keepalive_interval < 0 or self.keepalive_count < 0:
            raise ValueError("keepalive_interval: keepalive values must be 0 or more")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError("reconnect_min: must be positive and at most reconnect_max")
        if any(delay < 0 for delay in self.look_again):
            raise ValueError("look_again: delays must be 0 or more seconds")
        if self.call_timeout <= 0:
            raise ValueError("call_timeout: must be positive")
        missing = available()
        if missing is not None:
            raise ValueError(f"type: {missing}")
