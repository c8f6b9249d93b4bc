"""QMP events that report on devices, displays, jobs and memory (§2.3, the rows that emit
their own event IDs and never change the domain's state)."""

from __future__ import annotations

from typing import Any

from virtbridge.engine.domain import DomainRecord, Tx
from virtbridge.engine.payloads import (
    AgentLifecycle,
    AgentReason,
    AgentState,
    BalloonChange,
    BlockJob,
    BlockJobStatus,
    BlockJobType,
    BlockThreshold,
    Device,
    EventID,
    Graphics,
    GraphicsAddress,
    GraphicsAddressFamily,
    GraphicsPhase,
    MemoryDeviceSizeChange,
    MemoryFailure,
    MemoryFailureAction,
    MemoryFailureFlags,
    MemoryFailureRecipient,
    MigrationIteration,
    RtcChange,
    TrayChange,
    TrayChangeReason,
)
from virtbridge.engine.qmp_data import (
    Handler,
    disk_alias,
    get_dict,
    get_int,
    get_str,
)

BLOCK_JOB_TYPES: dict[str, BlockJobType] = {
    "stream": BlockJobType.PULL,
    "mirror": BlockJobType.COPY,
    "commit": BlockJobType.COMMIT,
    "backup": BlockJobType.BACKUP,
}

GRAPHICS_FAMILIES: dict[str, GraphicsAddressFamily] = {
    "ipv4": GraphicsAddressFamily.IPV4,
    "ipv6": GraphicsAddressFamily.IPV6,
    "unix": GraphicsAddressFamily.UNIX,
}

MEMORY_FAILURE_RECIPIENTS = {
    "hypervisor": MemoryFailureRecipient.HYPERVISOR,
    "guest": MemoryFailureRecipient.GUEST,
}
MEMORY_FAILURE_ACTIONS = {
    "ignore": MemoryFailureAction.IGNORE,
    "inject": MemoryFailureAction.INJECT,
    "fatal": MemoryFailureAction.FATAL,
    "reset": MemoryFailureAction.RESET,
}


def qmp_rtc_change(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    tx.emit(EventID.RTC_CHANGE, RtcChange(get_int(data, "offset")))


def qmp_balloon_change(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    tx.emit(EventID.BALLOON_CHANGE, BalloonChange(-(-get_int(data, "actual") // 1024)))


def _device_event(kind: EventID) -> Handler:
    def handler(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
        device = get_str(data, "device")
        if device:  # anonymous devices (only a QOM path) have no alias to report
            tx.emit(kind, Device(device))

    return handler


def qmp_acpi_device_ost(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    info = get_dict(data, "info")
    device = get_str(info, "device")
    if get_str(info, "slot-type") == "DIMM" and device and get_int(info, "status") == 1:
        tx.emit(EventID.DEVICE_REMOVAL_FAILED, Device(device))


def qmp_tray_moved(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    alias = disk_alias(get_str(data, "id") or get_str(data, "device"))
    opened = data.get("tray-open") is True
    tx.emit(
        EventID.TRAY_CHANGE,
        TrayChange(alias, TrayChangeReason.OPEN if opened else TrayChangeReason.CLOSE),
    )


def _address(info: dict[str, Any]) -> GraphicsAddress:
    family = GRAPHICS_FAMILIES.get(get_str(info, "family"), GraphicsAddressFamily.IPV4)
    service = info.get("service", info.get("port", ""))
    return GraphicsAddress(family, get_str(info, "host"), str(service))


def _graphics(phase: GraphicsPhase) -> Handler:
    def handler(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
        server, client = get_dict(data, "server"), get_dict(data, "client")
        subject: list[tuple[str, str]] = []
        if x509 := get_str(client, "x509_dname"):
            subject.append(("x509dname", x509))
        if sasl := get_str(client, "sasl_username"):
            subject.append(("saslUsername", sasl))
        auth = get_str(server, "auth", "none")
        tx.emit(
            EventID.GRAPHICS,
            Graphics(phase, _address(server), _address(client), auth, tuple(subject)),
        )

    return handler


def _block_job(status: BlockJobStatus) -> Handler:
    def handler(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
        job_type = BLOCK_JOB_TYPES.get(get_str(data, "type"), BlockJobType.UNKNOWN)
        final = (
            BlockJobStatus.FAILED
            if status is BlockJobStatus.COMPLETED and "error" in data
            else status
        )
        disk = disk_alias(get_str(data, "device"))
        tx.emit(EventID.BLOCK_JOB, BlockJob(disk, job_type, final))
        tx.emit(EventID.BLOCK_JOB_2, BlockJob(disk, job_type, final))

    return handler


def qmp_block_write_threshold(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    tx.emit(
        EventID.BLOCK_THRESHOLD,
        BlockThreshold(
            get_str(data, "node-name"),
            None,
            get_int(data, "write-threshold"),
            get_int(data, "amount-exceeded"),
        ),
    )


def qmp_migration_pass(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    tx.emit(EventID.MIGRATION_ITERATION, MigrationIteration(get_int(data, "pass")))


def qmp_vserport_change(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    if get_str(data, "id") not in tx.engine.agent_ports:
        return
    state = AgentState.CONNECTED if data.get("open") is True else AgentState.DISCONNECTED
    tx.emit(EventID.AGENT_LIFECYCLE, AgentLifecycle(state, AgentReason.CHANNEL))


def qmp_memory_failure(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    flags = get_dict(data, "flags")
    bits = (MemoryFailureFlags.ACTION_REQUIRED if flags.get("action-required") is True else 0) | (
        MemoryFailureFlags.RECURSIVE if flags.get("recursive") is True else 0
    )
    tx.emit(
        EventID.MEMORY_FAILURE,
        MemoryFailure(
            MEMORY_FAILURE_RECIPIENTS.get(
                get_str(data, "recipient"), MemoryFailureRecipient.HYPERVISOR
            ),
            MEMORY_FAILURE_ACTIONS.get(get_str(data, "action"), MemoryFailureAction.IGNORE),
            int(bits),
        ),
    )


def qmp_memory_device_size_change(tx: Tx, dom: DomainRecord, data: dict[str, Any]) -> None:
    tx.emit(
        EventID.MEMORY_DEVICE_SIZE_CHANGE,
        MemoryDeviceSizeChange(get_str(data, "id"), get_int(data, "size") // 1024),
    )


DEVICE_RULES: dict[str, Handler] = {
    "RTC_CHANGE": qmp_rtc_change,
    "BALLOON_CHANGE": qmp_balloon_change,
    "DEVICE_DELETED": _device_event(EventID.DEVICE_REMOVED),
    "DEVICE_UNPLUG_GUEST_ERROR": _device_event(EventID.DEVICE_REMOVAL_FAILED),
    "ACPI_DEVICE_OST": qmp_acpi_device_ost,
    "DEVICE_TRAY_MOVED": qmp_tray_moved,
    "VNC_CONNECTED": _graphics(GraphicsPhase.CONNECT),
    "VNC_INITIALIZED": _graphics(GraphicsPhase.INITIALIZE),
    "VNC_DISCONNECTED": _graphics(GraphicsPhase.DISCONNECT),
    "SPICE_CONNECTED": _graphics(GraphicsPhase.CONNECT),
    "SPICE_INITIALIZED": _graphics(GraphicsPhase.INITIALIZE),
    "SPICE_DISCONNECTED": _graphics(GraphicsPhase.DISCONNECT),
    "BLOCK_JOB_COMPLETED": _block_job(BlockJobStatus.COMPLETED),
    "BLOCK_JOB_CANCELLED": _block_job(BlockJobStatus.CANCELED),
    "BLOCK_JOB_READY": _block_job(BlockJobStatus.READY),
    "BLOCK_WRITE_THRESHOLD": qmp_block_write_threshold,
    "MIGRATION_PASS": qmp_migration_pass,
    "VSERPORT_CHANGE": qmp_vserport_change,
    "MEMORY_FAILURE": qmp_memory_failure,
    "MEMORY_DEVICE_SIZE_CHANGE": qmp_memory_device_size_change,
}
