"""QEMU Machine Protocol (QMP) support for virtbridge.

For now this package holds the asyncio QMP client that the QMP source will be built on.
"""

from __future__ import annotations

from ._client import DEFAULT_LINE_LIMIT, QmpClient, QmpEvent, QmpStats, QmpTimestamp
from ._errors import QmpCommandError, QmpConnectionError, QmpEof, QmpError, QmpTimeout

__all__ = [
    "DEFAULT_LINE_LIMIT",
    "QmpClient",
    "QmpCommandError",
    "QmpConnectionError",
    "QmpEof",
    "QmpError",
    "QmpEvent",
    "QmpStats",
    "QmpTimeout",
    "QmpTimestamp",
]
