"""Shared pieces of the transition tables: libvirt's reason/detail mappings and safe readers
for QMP ``data`` (hypervisor input is data: a missing or mistyped field gets a default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from virtbridge.engine.domain import DomainRecord, Tx
from virtbridge.engine.lifecycle import ResumedDetail, ShutdownDetail, SuspendedDetail
from virtbridge.engine.states import PausedReason, RunningReason

Handler = Callable[[Tx, DomainRecord, dict[str, Any]], None]
"""A QMP event transition: (transaction, domain, the event's ``data``)."""

# §2.2  Reason → detail mappings (qemu_domain.c)

PAUSED_TO_SUSPENDED: dict[int, SuspendedDetail] = {
    PausedReason.MIGRATION: SuspendedDetail.MIGRATED,
    PausedReason.FROM_SNAPSHOT: SuspendedDetail.FROM_SNAPSHOT,
    PausedReason.POSTCOPY: SuspendedDetail.POSTCOPY,
    PausedReason.POSTCOPY_FAILED: SuspendedDetail.POSTCOPY_FAILED,
}
"""Paused reason → SUSPENDED detail; every other reason → PAUSED."""

RUNNING_TO_RESUMED: dict[int, ResumedDetail] = {
    RunningReason.RESTORED: ResumedDetail.FROM_SNAPSHOT,
    RunningReason.FROM_SNAPSHOT: ResumedDetail.FROM_SNAPSHOT,
    RunningReason.MIGRATED: ResumedDetail.MIGRATED,
    RunningReason.MIGRATION_CANCELED: ResumedDetail.MIGRATED,
    RunningReason.POSTCOPY: ResumedDetail.POSTCOPY,
    RunningReason.POSTCOPY_FAILED: ResumedDetail.POSTCOPY_FAILED,
}
"""Running reason → RESUMED detail; every other reason → UNPAUSED."""

SHUTDOWN_DETAIL: dict[Any, ShutdownDetail] = {
    True: ShutdownDetail.GUEST,
    False: ShutdownDetail.HOST,
}
"""QMP SHUTDOWN ``data.guest`` (QEMU 2.10+) → detail; absent → FINISHED."""

# QMP ``query-status`` status → paused reason (qemu_monitor_json.c), used on reconnect.
STATUS_TO_PAUSED: dict[str, PausedReason] = {
    "debug": PausedReason.UNKNOWN,
    "internal-error": PausedReason.UNKNOWN,
    "restore-vm": PausedReason.UNKNOWN,
    "inmigrate": PausedReason.MIGRATION,
    "postmigrate": PausedReason.MIGRATION,
    "finish-migrate": PausedReason.MIGRATION,
    "io-error": PausedReason.IOERROR,
    "paused": PausedReason.USER,
    "prelaunch": PausedReason.USER,
    "running": PausedReason.UNKNOWN,
    "save-vm": PausedReason.SAVE,
    "shutdown": PausedReason.SHUTTING_DOWN,
    "watchdog": PausedReason.WATCHDOG,
    "guest-panicked": PausedReason.CRASHED,
}


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
