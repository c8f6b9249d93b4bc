"""QMP events that map to their own event IDs (§2.3), with the payload libvirt builds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.core.scenario import Run
from virtbridge import (
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
    EventType,
    Graphics,
    GraphicsAddress,
    GraphicsAddressFamily,
    GraphicsPhase,
    IoError,
    IoErrorAction,
    IoErrorReason,
    Lifecycle,
    MemoryDeviceSizeChange,
    MemoryFailure,
    MemoryFailureAction,
    MemoryFailureRecipient,
    MigrationIteration,
    PMReason,
    PMSuspendedDetail,
    QemuMonitor,
    RtcChange,
    TrayChange,
    TrayChangeReason,
    Watchdog,
    WatchdogAction,
)

START = ["start", "RESUME"]


def emitted(event: str, data: dict[str, Any]) -> list[tuple[EventID, Any]]:
    run = Run()
    run.feed(START)
    events = run.feed([f"{event} {json.dumps(data)}"])
    return [(e.kind, e.payload) for e in events]


VNC_SERVER = {
    "host": "127.0.0.1",
    "service": "5900",
    "family": "ipv4",
    "websocket": False,
    "auth": "vnc",
}
VNC_CLIENT = {"host": "127.0.0.1", "service": "40000", "family": "ipv4", "websocket": False}
LOCAL = GraphicsAddress(GraphicsAddressFamily.IPV4, "127.0.0.1", "5900")
REMOTE = GraphicsAddress(GraphicsAddressFamily.IPV4, "127.0.0.1", "40000")


@pytest.mark.parametrize(
    ("event", "data", "expected"),
    [
        ("RTC_CHANGE", {"offset": -3600}, [(EventID.RTC_CHANGE, RtcChange(-3600))]),
        (
            "BALLOON_CHANGE",
            {"actual": 1073741824},
            [(EventID.BALLOON_CHANGE, BalloonChange(1048576))],
        ),
        ("BALLOON_CHANGE", {"actual": 1025}, [(EventID.BALLOON_CHANGE, BalloonChange(2))]),
        ("WATCHDOG", {"action": "reset"}, [(EventID.WATCHDOG, Watchdog(WatchdogAction.RESET))]),
        (
            "WATCHDOG",
            {"action": "inject-nmi"},
            [(EventID.WATCHDOG, Watchdog(WatchdogAction.INJECTNMI))],
        ),
        ("WATCHDOG", {"action": "bogus"}, [(EventID.WATCHDOG, Watchdog(WatchdogAction.NONE))]),
        (
            "BLOCK_IO_ERROR",
            {"device": "drive-ide0-0-0", "operation": "read", "action": "report"},
            [
                (EventID.IO_ERROR, IoError("", "ide0-0-0", IoErrorAction.REPORT)),
                (EventID.IO_ERROR_REASON, IoErrorReason("", "ide0-0-0", IoErrorAction.REPORT, "")),
            ],
        ),
        (
            "SUSPEND_DISK",
            {},
            [
                (EventID.PMSUSPEND_DISK, PMReason(0)),
                (EventID.LIFECYCLE, Lifecycle(EventType.PMSUSPENDED, PMSuspendedDetail.DISK)),
            ],
        ),
        (
            "DEVICE_DELETED",
            {"device": "net1", "path": "/machine/peripheral/net1"},
            [(EventID.DEVICE_REMOVED, Device("net1"))],
        ),
        ("DEVICE_DELETED", {"path": "/machine/peripheral-anon/device[3]"}, []),
        (
            "DEVICE_UNPLUG_GUEST_ERROR",
            {"device": "dimm1", "path": "/x"},
            [(EventID.DEVICE_REMOVAL_FAILED, Device("dimm1"))],
        ),
        (
            "ACPI_DEVICE_OST",
            {
                "info": {
                    "device": "dimm1",
                    "slot": "0",
                    "slot-type": "DIMM",
                    "source": 3,
                    "status": 1,
                }
            },
            [(EventID.DEVICE_REMOVAL_FAILED, Device("dimm1"))],
        ),
        ("ACPI_DEVICE_OST", {"info": {"device": "dimm1", "slot-type": "DIMM", "status": 0}}, []),
        (
            "DEVICE_TRAY_MOVED",
            {"device": "drive-ide0-1-0", "id": "ide0-1-0", "tray-open": True},
            [(EventID.TRAY_CHANGE, TrayChange("ide0-1-0", TrayChangeReason.OPEN))],
        ),
        (
            "VNC_CONNECTED",
            {"server": VNC_SERVER, "client": VNC_CLIENT},
            [(EventID.GRAPHICS, Graphics(GraphicsPhase.CONNECT, LOCAL, REMOTE, "vnc", ()))],
        ),
        (
            "VNC_INITIALIZED",
            {
                "server": VNC_SERVER,
                "client": {**VNC_CLIENT, "x509_dname": "CN=a", "sasl_username": "bob"},
            },
            [
                (
                    EventID.GRAPHICS,
                    Graphics(
                        GraphicsPhase.INITIALIZE,
                        LOCAL,
                        REMOTE,
                        "vnc",
                        (("x509dname", "CN=a"), ("saslUsername", "bob")),
                    ),
                )
            ],
        ),
        (
            "SPICE_DISCONNECTED",
            {
                "server": {"host": "::1", "port": "5901", "family": "ipv6"},
                "client": {"host": "::1", "port": "1", "family": "ipv6"},
            },
            [
                (
                    EventID.GRAPHICS,
                    Graphics(
                        GraphicsPhase.DISCONNECT,
                        GraphicsAddress(GraphicsAddressFamily.IPV6, "::1", "5901"),
                        GraphicsAddress(GraphicsAddressFamily.IPV6, "::1", "1"),
                        "none",
                        (),
                    ),
                )
            ],
        ),
        (
            "BLOCK_JOB_COMPLETED",
            {"type": "mirror", "device": "drive-virtio-disk0", "len": 1, "offset": 1, "speed": 0},
            [
                (
                    EventID.BLOCK_JOB,
                    BlockJob("virtio-disk0", BlockJobType.COPY, BlockJobStatus.COMPLETED),
                ),
                (
                    EventID.BLOCK_JOB_2,
                    BlockJob("virtio-disk0", BlockJobType.COPY, BlockJobStatus.COMPLETED),
                ),
            ],
        ),
        (
            "BLOCK_JOB_COMPLETED",
            {"type": "stream", "device": "d", "error": "Input/output error"},
            [
                (EventID.BLOCK_JOB, BlockJob("d", BlockJobType.PULL, BlockJobStatus.FAILED)),
                (EventID.BLOCK_JOB_2, BlockJob("d", BlockJobType.PULL, BlockJobStatus.FAILED)),
            ],
        ),
        (
            "BLOCK_JOB_READY",
            {"type": "commit", "device": "d"},
            [
                (EventID.BLOCK_JOB, BlockJob("d", BlockJobType.COMMIT, BlockJobStatus.READY)),
                (EventID.BLOCK_JOB_2, BlockJob("d", BlockJobType.COMMIT, BlockJobStatus.READY)),
            ],
        ),
        (
            "BLOCK_WRITE_THRESHOLD",
            {"node-name": "libvirt-1-format", "amount-exceeded": 5, "write-threshold": 100},
            [(EventID.BLOCK_THRESHOLD, BlockThreshold("libvirt-1-format", None, 100, 5))],
        ),
        ("MIGRATION_PASS", {"pass": 3}, [(EventID.MIGRATION_ITERATION, MigrationIteration(3))]),
        (
            "VSERPORT_CHANGE",
            {"id": "channel0", "open": True},
            [(EventID.AGENT_LIFECYCLE, AgentLifecycle(AgentState.CONNECTED, AgentReason.CHANNEL))],
        ),
        ("VSERPORT_CHANGE", {"id": "channel7", "open": True}, []),
        (
            "MEMORY_FAILURE",
            {
                "recipient": "guest",
                "action": "inject",
                "flags": {"action-required": True, "recursive": True},
            },
            [
                (
                    EventID.MEMORY_FAILURE,
                    MemoryFailure(MemoryFailureRecipient.GUEST, MemoryFailureAction.INJECT, 3),
                )
            ],
        ),
        (
            "MEMORY_DEVICE_SIZE_CHANGE",
            {"id": "virtiomem0", "size": 2097152, "qom-path": "/machine/peripheral/virtiomem0"},
            [(EventID.MEMORY_DEVICE_SIZE_CHANGE, MemoryDeviceSizeChange("virtiomem0", 2048))],
        ),
        (
            "NIC_RX_FILTER_CHANGED",
            {"name": "net0", "path": "/x"},
            [
                (
                    EventID.QEMU_MONITOR,
                    QemuMonitor("NIC_RX_FILTER_CHANGED", {"name": "net0", "path": "/x"}),
                )
            ],
        ),
        (
            "SOME_FUTURE_EVENT",
            {"x": [1, 2]},
            [(EventID.QEMU_MONITOR, QemuMonitor("SOME_FUTURE_EVENT", {"x": [1, 2]}))],
        ),
    ],
)
def test_payloads(event: str, data: dict[str, Any], expected: list[tuple[EventID, Any]]) -> None:
    assert emitted(event, data) == expected


@pytest.mark.parametrize(
    "data",
    [
        {"offset": "soon"},
        {"actual": None},
        {"action": 7},
        {"info": "not an object"},
        {"server": [], "client": 3},
        {"flags": "all", "recipient": None},
    ],
)
@pytest.mark.parametrize(
    "event",
    [
        "RTC_CHANGE",
        "BALLOON_CHANGE",
        "WATCHDOG",
        "ACPI_DEVICE_OST",
        "VNC_CONNECTED",
        "MEMORY_FAILURE",
        "BLOCK_IO_ERROR",
        "BLOCK_JOB_COMPLETED",
        "SHUTDOWN",
        "GUEST_PANICKED",
        "DEVICE_TRAY_MOVED",
    ],
)
def test_mistyped_data_never_raises(event: str, data: dict[str, Any]) -> None:
    run = Run()
    run.feed(START)
    run.feed([f"{event} {json.dumps(data)}"])
    assert run.outcomes[-1].error is None


def test_all_monitor_events_mode_forwards_every_event_first() -> None:
    from virtbridge import Engine

    run = Run(Engine(monitor_events="all"))
    events = run.feed(START)
    assert [e.kind for e in events] == [EventID.QEMU_MONITOR, EventID.LIFECYCLE, EventID.LIFECYCLE]
    assert events[0].payload == QemuMonitor("RESUME", None)
