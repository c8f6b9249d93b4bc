"""A QMP event's ``data`` as the rules read it, and the signature of a rule.

Hypervisor input is data: a missing or mistyped field gets a default, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from virtbridge.engine.domain import DomainRecord, Tx

Handler = Callable[[Tx, DomainRecord, dict[str, Any]], None]
"""The rule for one QMP event: (transaction, the domain, the event's ``data``)."""


def get_str(data: dict[str, Any], key: str, default: str = "") -> str:
    value = data.get(key)
    return value if isinstance(value, str) else default


def get_int(data: dict[str, Any], key: str, default: int = 0) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def get_dict(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def disk_alias(device: str) -> str:
    """libvirt's disk alias from a QEMU drive id (``drive-virtio-disk0`` → ``virtio-disk0``)."""
    return device[6:] if device.startswith("drive-") else device
