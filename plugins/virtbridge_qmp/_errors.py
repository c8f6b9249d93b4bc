"""Errors raised by the QMP client, one tree under :class:`QmpError`::

    QmpError                    root of everything the client raises
    ├── QmpConnectionError      cannot connect, no greeting, socket failed or closed locally
    │   └── QmpEof              the peer closed the stream (QEMU exited or was killed)
    ├── QmpCommandError         the server answered a command with an error (error_class, desc)
    └── QmpTimeout              no reply (or event) within the allowed time

The peer's misbehaviour (garbage lines, unknown messages) is never raised: the reader logs and
counts it in ``QmpStats``.
"""

from __future__ import annotations

__all__ = ["QmpCommandError", "QmpConnectionError", "QmpEof", "QmpError", "QmpTimeout"]


class QmpError(Exception):
    """Root of all errors raised by the QMP client."""


class QmpConnectionError(QmpError):
    """The connection could not be made, or it is no longer usable."""


class QmpEof(QmpConnectionError):
    """The server closed the stream: for QEMU, the process exited or was killed."""


class QmpCommandError(QmpError):
    """The server answered ``command`` with ``{"error": {"class": ..., "desc": ...}}``."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"{command}: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc


class QmpTimeout(QmpError):
    """Nothing arrived within ``timeout`` seconds; ``command`` is None when waiting for an event."""

    def __init__(self, message: str, *, command: str | None, timeout: float | None) -> None:
        super().__init__(message)
        self.command = command
        self.timeout = timeout
