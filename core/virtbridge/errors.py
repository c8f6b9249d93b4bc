"""Every error virtbridge raises on purpose, in one tree under :class:`Error`::

    Error
    ├── ConfigError           a configuration mistake: ``file: key: message`` (exit status 2)
    │   └── PluginLoadError   a plugin named in the configuration or on the command line
    ├── TraceError            a trace line that cannot be turned into a signal (also ValueError)
    ├── Rejected              a sink's broker refused some records for good (``records``)
    ├── BridgeNotRunning      no bridge answers on the control socket
    └── EngineError           the engine was used wrongly (never for hypervisor input)
        ├── InvalidPolicy         a policy libvirt's qemu driver would refuse (also ValueError)
        ├── NotASignal            ``Engine.feed`` given something else (also TypeError)
        └── MalformedSnapshot     ``Engine.restore`` given a broken snapshot (also ValueError)

Each carries the fields a caller needs (``ConfigError.file``/``.key``, ``Rejected.records``,
``PluginLoadError.spec``/``.reason``); the message is written for the person who can fix it.
What comes from outside (QMP, brokers, libvirt) is data, never an exception of the engine.
This module imports nothing of virtbridge: every layer can raise these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class Error(Exception):
    """The root of virtbridge's errors."""


class ConfigError(Error):
    """A configuration mistake a user can fix: ``file: key: message``."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.message = message
        self.file = file
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [part for part in (self.file, self.key) if part]
        return ": ".join([*parts, self.message])


class PluginLoadError(ConfigError):
    """A plugin named in the configuration or on the command line cannot be loaded."""

    def __init__(self, spec: str, reason: str) -> None:
        self.spec = spec
        self.reason = reason
        super().__init__(f"cannot load plugin {spec!r}: {reason}")


class TraceError(Error, ValueError):
    """A trace line that cannot be turned into a signal."""


class Rejected(Error):
    """Raised by a sink (or its acknowledgement) when the broker refused some records for
    good.  ``records`` are the refused ones (the rest of the batch counts as delivered); the
    sink's ``on_reject`` policy decides whether they go to the dead-letter table."""

    def __init__(self, records: Sequence[Any], reason: str) -> None:
        super().__init__(reason)
        self.records = list(records)
        self.reason = reason


class BridgeNotRunning(Error):
    """No bridge answers on the control socket."""


class EngineError(Error):
    """The engine was used wrongly.  Hypervisor input never raises: it is data."""


class InvalidPolicy(EngineError, ValueError):
    """A lifecycle policy libvirt's qemu driver would refuse."""


class NotASignal(EngineError, TypeError):
    """``Engine.feed`` was given something that is not a signal."""


class MalformedSnapshot(EngineError, ValueError):
    """``Engine.restore`` was given a snapshot it cannot read."""
