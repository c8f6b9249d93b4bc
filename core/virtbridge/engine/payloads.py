"""Domain event IDs (``virDomainEventID``) and the payload each one carries.

Every payload is a frozen struct whose fields are the callback arguments libvirt passes
after ``(conn, dom, ...)``, with snake_case names.  Enum-valued fields keep libvirt's numbers.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import msgspec

from virtbridge.engine.lifecycle import EventType
from virtbridge.engine.states import EXTENSION_BASE


class EventID(IntEnum):
    """``virDomainEventID`` (0-27), plus the generic QEMU monitor event.

    ``QEMU_MONITOR`` stands for libvirt-qemu's separate monitor-event API
    (``virConnectDomainQemuMonitorEventRegister``), which has no number in libvirt: it is
    not an extension of behaviour, only of numbering.
    """

    LIFECYCLE = 0
    REBOOT = 1
    RTC_CHANGE = 2
    WATCHDOG = 3
    IO_ERROR = 4
    GRAPHICS = 5
    IO_ERROR_REASON = 6
    CONTROL_ERROR = 7
    BLOCK_JOB = 8
    DISK_CHANGE = 9
    TRAY_CHANGE = 10
    PMWAKEUP = 11
    PMSUSPEND = 12
    BALLOON_CHANGE = 13
    PMSUSPEND_DISK = 14
    DEVICE_REMOVED = 15
    BLOCK_JOB_2 = 16
    TUNABLE = 17
    AGENT_LIFECYCLE = 18
    DEVICE_ADDED = 19
    MIGRATION_ITERATION = 20
    JOB_COMPLETED = 21
    DEVICE_REMOVAL_FAILED = 22
    METADATA_CHANGE = 23
    BLOCK_THRESHOLD = 24
    MEMORY_FAILURE = 25
    MEMORY_DEVICE_SIZE_CHANGE = 26
    NIC_MAC_CHANGE = 27
    QEMU_MONITOR = EXTENSION_BASE

    @property
    def kind(self) -> str:
        """The short, lower-case name used in topics and CloudEvents types (``io-error``)."""
        return _KINDS[self]


_KINDS = {
    member: member.name.lower()
    .replace("_", "-")
    .replace("pmsuspend", "pm-suspend")
    .replace("pmwakeup", "pm-wakeup")
    for member in EventID
}


class WatchdogAction(IntEnum):
    NONE = 0
    PAUSE = 1
    RESET = 2
    POWEROFF = 3
    SHUTDOWN = 4
    DEBUG = 5
    INJECTNMI = 6


class IoErrorAction(IntEnum):
    NONE = 0
    PAUSE = 1
    REPORT = 2


class GraphicsPhase(IntEnum):
    CONNECT = 0
    INITIALIZE = 1
    DISCONNECT = 2


class GraphicsAddressFamily(IntEnum):
    IPV4 = 0
    IPV6 = 1
    UNIX = 2


class BlockJobType(IntEnum):
    UNKNOWN = 0
    PULL = 1
    COPY = 2
    COMMIT = 3
    ACTIVE_COMMIT = 4
    BACKUP = 5


class BlockJobStatus(IntEnum):
    COMPLETED = 0
    FAILED = 1
    CANCELED = 2
    READY = 3


class DiskChangeReason(IntEnum):
    MISSING_ON_START = 0
    DROP_MISSING_ON_START = 1


class TrayChangeReason(IntEnum):
    OPEN = 0
    CLOSE = 1


class AgentState(IntEnum):
    CONNECTED = 1
    DISCONNECTED = 2


class AgentReason(IntEnum):
    UNKNOWN = 0
    DOMAIN_STARTED = 1
    CHANNEL = 2


class MetadataType(IntEnum):
    DESCRIPTION = 0
    TITLE = 1
    ELEMENT = 2


class MemoryFailureRecipient(IntEnum):
    HYPERVISOR = 0
    GUEST = 1


class MemoryFailureAction(IntEnum):
    IGNORE = 0
    INJECT = 1
    FATAL = 2
    RESET = 3


class MemoryFailureFlags(IntEnum):
    ACTION_REQUIRED = 1
    RECURSIVE = 2


class _Payload(msgspec.Struct, frozen=True, gc=False):
    pass


class Lifecycle(_Payload, frozen=True, gc=False):
    """LIFECYCLE: ``event`` (an :class:`EventType`) and ``detail`` (a member of its detail enum)."""

    event: EventType
    detail: int


class Empty(_Payload, frozen=True, gc=False):
    """REBOOT and CONTROL_ERROR carry nothing."""


class RtcChange(_Payload, frozen=True, gc=False):
    utcoffset: int


class Watchdog(_Payload, frozen=True, gc=False):
    action: WatchdogAction


class IoError(_Payload, frozen=True, gc=False):
    src_path: str
    dev_alias: str
    action: IoErrorAction


class IoErrorReason(_Payload, frozen=True, gc=False):
    src_path: str
    dev_alias: str
    action: IoErrorAction
    reason: str


class GraphicsAddress(_Payload, frozen=True, gc=False):
    family: GraphicsAddressFamily
    node: str
    service: str


class Graphics(_Payload, frozen=True, gc=False):
    phase: GraphicsPhase
    local: GraphicsAddress
    remote: GraphicsAddress
    auth_scheme: str
    subject: tuple[tuple[str, str], ...] = ()


class BlockJob(_Payload, frozen=True, gc=False):
    """BLOCK_JOB (``disk`` is the path) and BLOCK_JOB_2 (``disk`` is the target name)."""

    disk: str
    type: BlockJobType
    status: BlockJobStatus


class DiskChange(_Payload, frozen=True, gc=False):
    old_src_path: str | None
    new_src_path: str | None
    dev_alias: str
    reason: DiskChangeReason


class TrayChange(_Payload, frozen=True, gc=False):
    dev_alias: str
    reason: TrayChangeReason


class PMReason(_Payload, frozen=True, gc=False):
    """PMWAKEUP, PMSUSPEND and PMSUSPEND_DISK: ``reason`` is always 0 today."""

    reason: int = 0


class BalloonChange(_Payload, frozen=True, gc=False):
    actual: int
    """Current balloon size in KiB."""


class Device(_Payload, frozen=True, gc=False):
    """DEVICE_REMOVED, DEVICE_ADDED and DEVICE_REMOVAL_FAILED."""

    dev_alias: str


class TypedParams(_Payload, frozen=True, gc=False):
    """TUNABLE and JOB_COMPLETED: a typed-parameter list as a mapping."""

    params: dict[str, Any]


class AgentLifecycle(_Payload, frozen=True, gc=False):
    state: AgentState
    reason: AgentReason


class MigrationIteration(_Payload, frozen=True, gc=False):
    iteration: int


class MetadataChange(_Payload, frozen=True, gc=False):
    type: MetadataType
    nsuri: str | None


class BlockThreshold(_Payload, frozen=True, gc=False):
    dev: str
    path: str | None
    threshold: int
    excess: int


class MemoryFailure(_Payload, frozen=True, gc=False):
    recipient: MemoryFailureRecipient
    action: MemoryFailureAction
    flags: int


class MemoryDeviceSizeChange(_Payload, frozen=True, gc=False):
    alias: str
    size: int
    """New size in KiB."""


class NicMacChange(_Payload, frozen=True, gc=False):
    alias: str
    old_mac: str
    new_mac: str


class QemuMonitor(_Payload, frozen=True, gc=False):
    """The generic monitor event: the QMP event exactly as QEMU sent it."""

    event: str
    data: dict[str, Any] | None = None


Payload = (
    Lifecycle
    | Empty
    | RtcChange
    | Watchdog
    | IoError
    | IoErrorReason
    | Graphics
    | BlockJob
    | DiskChange
    | TrayChange
    | PMReason
    | BalloonChange
    | Device
    | TypedParams
    | AgentLifecycle
    | MigrationIteration
    | MetadataChange
    | BlockThreshold
    | MemoryFailure
    | MemoryDeviceSizeChange
    | NicMacChange
    | QemuMonitor
)

PAYLOAD_TYPES: dict[EventID, type[Any]] = {
    EventID.LIFECYCLE: Lifecycle,
    EventID.REBOOT: Empty,
    EventID.RTC_CHANGE: RtcChange,
    EventID.WATCHDOG: Watchdog,
    EventID.IO_ERROR: IoError,
    EventID.GRAPHICS: Graphics,
    EventID.IO_ERROR_REASON: IoErrorReason,
    EventID.CONTROL_ERROR: Empty,
    EventID.BLOCK_JOB: BlockJob,
    EventID.DISK_CHANGE: DiskChange,
    EventID.TRAY_CHANGE: TrayChange,
    EventID.PMWAKEUP: PMReason,
    EventID.PMSUSPEND: PMReason,
    EventID.BALLOON_CHANGE: BalloonChange,
    EventID.PMSUSPEND_DISK: PMReason,
    EventID.DEVICE_REMOVED: Device,
    EventID.BLOCK_JOB_2: BlockJob,
    EventID.TUNABLE: TypedParams,
    EventID.AGENT_LIFECYCLE: AgentLifecycle,
    EventID.DEVICE_ADDED: Device,
    EventID.MIGRATION_ITERATION: MigrationIteration,
    EventID.JOB_COMPLETED: TypedParams,
    EventID.DEVICE_REMOVAL_FAILED: Device,
    EventID.METADATA_CHANGE: MetadataChange,
    EventID.BLOCK_THRESHOLD: BlockThreshold,
    EventID.MEMORY_FAILURE: MemoryFailure,
    EventID.MEMORY_DEVICE_SIZE_CHANGE: MemoryDeviceSizeChange,
    EventID.NIC_MAC_CHANGE: NicMacChange,
    EventID.QEMU_MONITOR: QemuMonitor,
}
"""The payload struct of every event ID."""

EMPTY = Empty()
"""The shared payload of REBOOT and CONTROL_ERROR events."""
