"""Exact output of the domain-events printer in the styles of three libvirt programs.

Expected lines are written out literally, from the format strings and string tables of
libvirt-python's ``examples/event-test.py`` (``python``), libvirt's
``examples/c/misc/event-test.c`` (``c``) and ``tools/virsh-domain-event.c`` (``virsh``), as
summarised in the lifecycle reference (§1, §3).  Each python and c lifecycle event prints two
lines because both programs register their lifecycle callback twice.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any, NamedTuple

import pytest

from virtbridge import (
    AgentLifecycle,
    AgentReason,
    AgentState,
    BalloonChange,
    BlockJob,
    BlockJobStatus,
    BlockJobType,
    BlockThreshold,
    CrashedDetail,
    DefinedDetail,
    Device,
    DiskChange,
    DiskChangeReason,
    DomainRef,
    DomainState,
    Empty,
    Event,
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
    MemoryFailureFlags,
    MemoryFailureRecipient,
    MetadataChange,
    MetadataType,
    MigrationIteration,
    MonitorEof,
    NicMacChange,
    Payload,
    PMReason,
    PMSuspendedDetail,
    QemuMonitor,
    ResumedDetail,
    RtcChange,
    ShutdownDetail,
    StartedDetail,
    StoppedDetail,
    SuspendedDetail,
    Timestamp,
    TrayChange,
    TrayChangeReason,
    TypedParams,
    UndefinedDetail,
    Watchdog,
    WatchdogAction,
)
from virtbridge_domain_events._formats import STYLES, format_event

UUID = "6e1f7c1e-2b5c-4d0e-9a51-1c6f3f0a7b42"
CAUSE = MonitorEof(domain="demo")  # any signal will do; the printer never looks at it
LOCAL = GraphicsAddress(family=GraphicsAddressFamily.IPV4, node="127.0.0.1", service="5901")
REMOTE = GraphicsAddress(family=GraphicsAddressFamily.IPV6, node="::1", service="51234")


def make(
    kind: EventID,
    payload: Payload,
    domain_id: int = 7,
    *,
    name: str = "demo",
    timestamp: Timestamp | None = None,
) -> Event:
    domain = DomainRef(name, UUID, domain_id)
    return Event(kind, domain, payload, DomainState.RUNNING, 0, timestamp, CAUSE)


def lifecycle(event: EventType, detail: int, domain_id: int = 7, **kw: Any) -> Event:
    return make(EventID.LIFECYCLE, Lifecycle(event, detail), domain_id, **kw)


class Row(NamedTuple):
    """A lifecycle (event, detail) pair and the lines each program prints for it."""

    event: EventType
    detail: int
    domain_id: int
    python: list[str]
    c: list[str]
    virsh: list[str]


class Case(NamedTuple):
    """Any other event and the lines each program prints for it."""

    name: str
    kind: EventID
    payload: Payload
    domain_id: int
    python: list[str]
    c: list[str]
    virsh: list[str]


# Every member of every detail enum, the ones the programs' tables do not know included:
# Started 5, Suspended 9 and Crashed 1 print as numbers in python and "unknown" in c/virsh
# (except Crashloaded, which c and virsh know); Stopped 7 is "Daemon" in python.  Shutdown
# 100/101 are virtbridge's extensions, printed as words in every style.
LIFECYCLE: list[Row] = [
    Row(
        EventType.DEFINED,
        DefinedDetail.ADDED,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Defined Added",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Defined Added",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Defined Added",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Defined Added",
        ],
        [
            "event 'lifecycle' for domain 'demo': Defined Added",
        ],
    ),
    Row(
        EventType.DEFINED,
        DefinedDetail.UPDATED,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Defined Updated",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Defined Updated",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Defined Updated",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Defined Updated",
        ],
        [
            "event 'lifecycle' for domain 'demo': Defined Updated",
        ],
    ),
    Row(
        EventType.DEFINED,
        DefinedDetail.RENAMED,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Defined Renamed",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Defined Renamed",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Defined Renamed",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Defined Renamed",
        ],
        [
            "event 'lifecycle' for domain 'demo': Defined Renamed",
        ],
    ),
    Row(
        EventType.DEFINED,
        DefinedDetail.FROM_SNAPSHOT,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Defined Snapshot",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Defined Snapshot",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Defined Snapshot",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Defined Snapshot",
        ],
        [
            "event 'lifecycle' for domain 'demo': Defined Snapshot",
        ],
    ),
    Row(
        EventType.UNDEFINED,
        UndefinedDetail.REMOVED,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Undefined Removed",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Undefined Removed",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Undefined Removed",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Undefined Removed",
        ],
        [
            "event 'lifecycle' for domain 'demo': Undefined Removed",
        ],
    ),
    Row(
        EventType.UNDEFINED,
        UndefinedDetail.RENAMED,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Undefined Renamed",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Undefined Renamed",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Undefined Renamed",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Undefined Renamed",
        ],
        [
            "event 'lifecycle' for domain 'demo': Undefined Renamed",
        ],
    ),
    Row(
        EventType.STARTED,
        StartedDetail.BOOTED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started Booted",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started Booted",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started Booted",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started Booted",
        ],
        [
            "event 'lifecycle' for domain 'demo': Started Booted",
        ],
    ),
    Row(
        EventType.STARTED,
        StartedDetail.MIGRATED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started Migrated",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started Migrated",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started Migrated",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started Migrated",
        ],
        [
            "event 'lifecycle' for domain 'demo': Started Migrated",
        ],
    ),
    Row(
        EventType.STARTED,
        StartedDetail.RESTORED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started Restored",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started Restored",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started Restored",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started Restored",
        ],
        [
            "event 'lifecycle' for domain 'demo': Started Restored",
        ],
    ),
    Row(
        EventType.STARTED,
        StartedDetail.FROM_SNAPSHOT,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started Snapshot",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started Snapshot",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started Snapshot",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started Snapshot",
        ],
        [
            "event 'lifecycle' for domain 'demo': Started Snapshot",
        ],
    ),
    Row(
        EventType.STARTED,
        StartedDetail.WAKEUP,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started Wakeup",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started Wakeup",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started Event wakeup",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started Event wakeup",
        ],
        [
            "event 'lifecycle' for domain 'demo': Started Event wakeup",
        ],
    ),
    Row(
        EventType.STARTED,
        StartedDetail.RECREATED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started 5",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started 5",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Started unknown",
            "myDomainEventCallback2 EVENT: Domain demo(7) Started unknown",
        ],
        [
            "event 'lifecycle' for domain 'demo': Started unknown",
        ],
    ),
    Row(
        EventType.SUSPENDED,
        SuspendedDetail.PAUSED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Paused",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Paused",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Paused",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Paused",
        ],
        [
            "event 'lifecycle' for domain 'demo': Suspended Paused",
        ],
    ),
    Row(
        EventType.SUSPENDED,
        SuspendedDetail.MIGRATED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Migrated",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Migrated",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Migrated",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Migrated",
        ],
        [
            "event 'lifecycle' for domain 'demo': Suspended Migrated",
        ],
    ),
    Row(
        EventType.SUSPENDED,
        SuspendedDetail.IOERROR,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended IOError",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended IOError",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended I/O Error",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended I/O Error",
        ],
        [
            "event 'lifecycle' for domain 'demo': Suspended I/O Error",
        ],
    ),
    Row(
        EventType.SUSPENDED,
        SuspendedDetail.WATCHDOG,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Watchdog",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Watchdog",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Watchdog",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Watchdog",
        ],
        [
            "event 'lifecycle' for domain 'demo': Suspended Watchdog",
        ],
    ),
    Row(
        EventType.SUSPENDED,
        SuspendedDetail.RESTORED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Restored",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Restored",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Restored",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Restored",
        ],
        [
            "event 'lifecycle' for domain 'demo': Suspended Restored",
        ],
    ),
    Row(
        EventType.SUSPENDED,
        SuspendedDetail.FROM_SNAPSHOT,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Snapshot",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Snapshot",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Snapshot",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Snapshot",
        ],
        [
            "event 'lifecycle' for domain 'demo': Suspended Snapshot",
        ],
    ),
    Row(
        EventType.SUSPENDED,
        SuspendedDetail.API_ERROR,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended API error",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended API error",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended API error",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended API error",
        ],
        [
            "event 'lifecycle' for domain 'demo': Suspended API error",
        ],
    ),
    Row(
        EventType.SUSPENDED,
        SuspendedDetail.POSTCOPY,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Postcopy",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Postcopy",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Post-copy",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Post-copy",
        ],
        [
            "event 'lifecycle' for domain 'demo': Suspended Post-copy",
        ],
    ),
    Row(
        EventType.SUSPENDED,
        SuspendedDetail.POSTCOPY_FAILED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Postcopy failed",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Postcopy failed",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended Post-copy Error",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended Post-copy Error",
        ],
        [
            "event 'lifecycle' for domain 'demo': Suspended Post-copy Error",
        ],
    ),
    Row(
        EventType.SUSPENDED,
        SuspendedDetail.GUEST_SHUTDOWN,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended 9",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended 9",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Suspended unknown",
            "myDomainEventCallback2 EVENT: Domain demo(7) Suspended unknown",
        ],
        [
            "event 'lifecycle' for domain 'demo': Suspended unknown",
        ],
    ),
    Row(
        EventType.RESUMED,
        ResumedDetail.UNPAUSED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Resumed Unpaused",
            "myDomainEventCallback2 EVENT: Domain demo(7) Resumed Unpaused",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Resumed Unpaused",
            "myDomainEventCallback2 EVENT: Domain demo(7) Resumed Unpaused",
        ],
        [
            "event 'lifecycle' for domain 'demo': Resumed Unpaused",
        ],
    ),
    Row(
        EventType.RESUMED,
        ResumedDetail.MIGRATED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Resumed Migrated",
            "myDomainEventCallback2 EVENT: Domain demo(7) Resumed Migrated",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Resumed Migrated",
            "myDomainEventCallback2 EVENT: Domain demo(7) Resumed Migrated",
        ],
        [
            "event 'lifecycle' for domain 'demo': Resumed Migrated",
        ],
    ),
    Row(
        EventType.RESUMED,
        ResumedDetail.FROM_SNAPSHOT,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Resumed Snapshot",
            "myDomainEventCallback2 EVENT: Domain demo(7) Resumed Snapshot",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Resumed Snapshot",
            "myDomainEventCallback2 EVENT: Domain demo(7) Resumed Snapshot",
        ],
        [
            "event 'lifecycle' for domain 'demo': Resumed Snapshot",
        ],
    ),
    Row(
        EventType.RESUMED,
        ResumedDetail.POSTCOPY,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Resumed Postcopy",
            "myDomainEventCallback2 EVENT: Domain demo(7) Resumed Postcopy",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Resumed Post-copy",
            "myDomainEventCallback2 EVENT: Domain demo(7) Resumed Post-copy",
        ],
        [
            "event 'lifecycle' for domain 'demo': Resumed Post-copy",
        ],
    ),
    Row(
        EventType.RESUMED,
        ResumedDetail.POSTCOPY_FAILED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Resumed 4",
            "myDomainEventCallback2 EVENT: Domain demo(7) Resumed 4",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Resumed Post-copy Error",
            "myDomainEventCallback2 EVENT: Domain demo(7) Resumed Post-copy Error",
        ],
        [
            "event 'lifecycle' for domain 'demo': Resumed Post-copy Error",
        ],
    ),
    Row(
        EventType.STOPPED,
        StoppedDetail.SHUTDOWN,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Stopped Shutdown",
            "myDomainEventCallback2 EVENT: Domain demo(7) Stopped Shutdown",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Stopped Shutdown",
            "myDomainEventCallback2 EVENT: Domain demo(7) Stopped Shutdown",
        ],
        [
            "event 'lifecycle' for domain 'demo': Stopped Shutdown",
        ],
    ),
    Row(
        EventType.STOPPED,
        StoppedDetail.DESTROYED,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Destroyed",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Destroyed",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Destroyed",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Destroyed",
        ],
        [
            "event 'lifecycle' for domain 'demo': Stopped Destroyed",
        ],
    ),
    Row(
        EventType.STOPPED,
        StoppedDetail.CRASHED,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Crashed",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Crashed",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Crashed",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Crashed",
        ],
        [
            "event 'lifecycle' for domain 'demo': Stopped Crashed",
        ],
    ),
    Row(
        EventType.STOPPED,
        StoppedDetail.MIGRATED,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Migrated",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Migrated",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Migrated",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Migrated",
        ],
        [
            "event 'lifecycle' for domain 'demo': Stopped Migrated",
        ],
    ),
    Row(
        EventType.STOPPED,
        StoppedDetail.SAVED,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Saved",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Saved",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Saved",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Saved",
        ],
        [
            "event 'lifecycle' for domain 'demo': Stopped Saved",
        ],
    ),
    Row(
        EventType.STOPPED,
        StoppedDetail.FAILED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Stopped Failed",
            "myDomainEventCallback2 EVENT: Domain demo(7) Stopped Failed",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Stopped Failed",
            "myDomainEventCallback2 EVENT: Domain demo(7) Stopped Failed",
        ],
        [
            "event 'lifecycle' for domain 'demo': Stopped Failed",
        ],
    ),
    Row(
        EventType.STOPPED,
        StoppedDetail.FROM_SNAPSHOT,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Snapshot",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Snapshot",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Snapshot",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Snapshot",
        ],
        [
            "event 'lifecycle' for domain 'demo': Stopped Snapshot",
        ],
    ),
    Row(
        EventType.STOPPED,
        StoppedDetail.RECREATED,
        -1,
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Daemon",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Daemon",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped unknown",
            "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped unknown",
        ],
        [
            "event 'lifecycle' for domain 'demo': Stopped unknown",
        ],
    ),
    Row(
        EventType.STOPPED,
        StoppedDetail.VANISHED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Stopped Vanished",
            "myDomainEventCallback2 EVENT: Domain demo(7) Stopped Vanished",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Stopped Vanished",
            "myDomainEventCallback2 EVENT: Domain demo(7) Stopped Vanished",
        ],
        [
            "event 'lifecycle' for domain 'demo': Stopped Vanished",
        ],
    ),
    Row(
        EventType.SHUTDOWN,
        ShutdownDetail.FINISHED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown Finished",
            "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown Finished",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown Finished",
            "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown Finished",
        ],
        [
            "event 'lifecycle' for domain 'demo': Shutdown Finished",
        ],
    ),
    Row(
        EventType.SHUTDOWN,
        ShutdownDetail.GUEST,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown On guest request",
            "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown On guest request",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown Guest request",
            "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown Guest request",
        ],
        [
            "event 'lifecycle' for domain 'demo': Shutdown Finished after guest request",
        ],
    ),
    Row(
        EventType.SHUTDOWN,
        ShutdownDetail.HOST,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown On host request",
            "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown On host request",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown Host request",
            "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown Host request",
        ],
        [
            "event 'lifecycle' for domain 'demo': Shutdown Finished after host request",
        ],
    ),
    Row(
        EventType.SHUTDOWN,
        ShutdownDetail.REQUESTED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown Requested",
            "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown Requested",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown Requested",
            "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown Requested",
        ],
        [
            "event 'lifecycle' for domain 'demo': Shutdown Requested",
        ],
    ),
    Row(
        EventType.SHUTDOWN,
        ShutdownDetail.IGNORED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown Request ignored",
            "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown Request ignored",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown Request ignored",
            "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown Request ignored",
        ],
        [
            "event 'lifecycle' for domain 'demo': Shutdown Request ignored",
        ],
    ),
    Row(
        EventType.PMSUSPENDED,
        PMSuspendedDetail.MEMORY,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) PMSuspended Memory",
            "myDomainEventCallback2 EVENT: Domain demo(7) PMSuspended Memory",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) PMSuspended Memory",
            "myDomainEventCallback2 EVENT: Domain demo(7) PMSuspended Memory",
        ],
        [
            "event 'lifecycle' for domain 'demo': PMSuspended Memory",
        ],
    ),
    Row(
        EventType.PMSUSPENDED,
        PMSuspendedDetail.DISK,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) PMSuspended Disk",
            "myDomainEventCallback2 EVENT: Domain demo(7) PMSuspended Disk",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) PMSuspended Disk",
            "myDomainEventCallback2 EVENT: Domain demo(7) PMSuspended Disk",
        ],
        [
            "event 'lifecycle' for domain 'demo': PMSuspended Disk",
        ],
    ),
    Row(
        EventType.CRASHED,
        CrashedDetail.PANICKED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Crashed Panicked",
            "myDomainEventCallback2 EVENT: Domain demo(7) Crashed Panicked",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Crashed Panicked",
            "myDomainEventCallback2 EVENT: Domain demo(7) Crashed Panicked",
        ],
        [
            "event 'lifecycle' for domain 'demo': Crashed Panicked",
        ],
    ),
    Row(
        EventType.CRASHED,
        CrashedDetail.CRASHLOADED,
        7,
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Crashed 1",
            "myDomainEventCallback2 EVENT: Domain demo(7) Crashed 1",
        ],
        [
            "myDomainEventCallback1 EVENT: Domain demo(7) Crashed Crashloaded",
            "myDomainEventCallback2 EVENT: Domain demo(7) Crashed Crashloaded",
        ],
        [
            "event 'lifecycle' for domain 'demo': Crashed Crashloaded",
        ],
    ),
]

# Every other event ID, some twice for values the tables handle differently.
EVENTS: list[Case] = [
    Case(
        "reboot",
        EventID.REBOOT,
        Empty(),
        7,
        [
            "myDomainEventRebootCallback: Domain demo(7)",
        ],
        [
            "myDomainEventRebootCallback EVENT: Domain demo(7) rebooted",
        ],
        [
            "event 'reboot' for domain 'demo'",
        ],
    ),
    Case(
        "rtc-change",
        EventID.RTC_CHANGE,
        RtcChange(utcoffset=-3600),
        7,
        [
            "myDomainEventRTCChangeCallback: Domain demo(7) -3600",
        ],
        [
            "myDomainEventRTCChangeCallback EVENT: Domain demo(7) rtc change -3600",
        ],
        [
            "event 'rtc-change' for domain 'demo': -3600",
        ],
    ),
    Case(
        "watchdog",
        EventID.WATCHDOG,
        Watchdog(action=WatchdogAction.INJECTNMI),
        7,
        [
            "myDomainEventWatchdogCallback: Domain demo(7) Inject NMI",
        ],
        [
            "myDomainEventWatchdogCallback EVENT: Domain demo(7) watchdog action=6",
        ],
        [
            "event 'watchdog' for domain 'demo': inject-nmi",
        ],
    ),
    Case(
        "io-error",
        EventID.IO_ERROR,
        IoError(
            src_path="/var/lib/libvirt/images/demo.qcow2",
            dev_alias="virtio-disk0",
            action=IoErrorAction.PAUSE,
        ),
        7,
        [
            "myDomainEventIOErrorCallback: Domain demo(7) /var/lib/libvirt/images/demo.qcow2 virtio-disk0 Pause",
        ],
        [
            "myDomainEventIOErrorCallback EVENT: Domain demo(7) io error path=/var/lib/libvirt/images/demo.qcow2 alias=virtio-disk0 action=1",
        ],
        [
            "event 'io-error' for domain 'demo': /var/lib/libvirt/images/demo.qcow2 (virtio-disk0) pause",
        ],
    ),
    Case(
        "graphics",
        EventID.GRAPHICS,
        Graphics(phase=GraphicsPhase.CONNECT, local=LOCAL, remote=REMOTE, auth_scheme="vnc"),
        7,
        [
            "myDomainEventGraphicsCallback: Domain demo(7) Connect vnc",
        ],
        [
            "myDomainEventGraphicsCallback EVENT: Domain demo(7) graphics connected local: family=0 node=127.0.0.1 service=5901 remote: family=1 node=::1 service=51234 auth: vnc ",
        ],
        [
            "event 'graphics' for domain 'demo': connect local[IPv4 127.0.0.1 5901] remote[IPv6 ::1 51234] vnc",
        ],
    ),
    Case(
        "graphics-identities",
        EventID.GRAPHICS,
        Graphics(
            phase=GraphicsPhase.DISCONNECT,
            local=LOCAL,
            remote=REMOTE,
            auth_scheme="sasl",
            subject=(("x509dname", "CN=client"), ("saslUsername", "fred")),
        ),
        7,
        [
            "myDomainEventGraphicsCallback: Domain demo(7) Disconnect sasl",
        ],
        [
            "myDomainEventGraphicsCallback EVENT: Domain demo(7) graphics disconnected local: family=0 node=127.0.0.1 service=5901 remote: family=1 node=::1 service=51234 auth: sasl  identity: x509dname=CN=client identity: saslUsername=fred",
        ],
        [
            "event 'graphics' for domain 'demo': disconnect local[IPv4 127.0.0.1 5901] remote[IPv6 ::1 51234] sasl",
            "\tx509dname=CN=client",
            "\tsaslUsername=fred",
        ],
    ),
    Case(
        "io-error-reason",
        EventID.IO_ERROR_REASON,
        IoErrorReason(
            src_path="/var/lib/libvirt/images/demo.qcow2",
            dev_alias="virtio-disk0",
            action=IoErrorAction.REPORT,
            reason="enospc",
        ),
        7,
        [
            "myDomainEventIOErrorReasonCallback: Domain demo(7) /var/lib/libvirt/images/demo.qcow2 virtio-disk0 Report enospc",
        ],
        [
            "myDomainEventIOErrorReasonCallback EVENT: Domain demo(7) io error (reason) path=/var/lib/libvirt/images/demo.qcow2 alias=virtio-disk0 action=2 reason=enospc",
        ],
        [
            "event 'io-error' for domain 'demo': /var/lib/libvirt/images/demo.qcow2 (virtio-disk0) report due to enospc",
        ],
    ),
    Case(
        "control-error",
        EventID.CONTROL_ERROR,
        Empty(),
        7,
        [
            "myDomainEventControlErrorCallback: Domain demo(7)",
        ],
        [
            "myDomainEventControlErrorCallback EVENT: Domain demo(7) control error",
        ],
        [
            "event 'control-error' for domain 'demo'",
        ],
    ),
    Case(
        "block-job",
        EventID.BLOCK_JOB,
        BlockJob(
            disk="/var/lib/libvirt/images/demo.qcow2",
            type=BlockJobType.ACTIVE_COMMIT,
            status=BlockJobStatus.COMPLETED,
        ),
        7,
        [
            "myDomainEventBlockJobCallback: Domain demo(7) ActiveCommit on disk /var/lib/libvirt/images/demo.qcow2 Completed",
        ],
        [
            "myDomainEventBlockJobCallback EVENT: Domain demo(7) block job callback 'VIR_DOMAIN_EVENT_ID_BLOCK_JOB' disk '/var/lib/libvirt/images/demo.qcow2', type 'active layer block commit' status 'completed'",
        ],
        [
            "event 'block-job' for domain 'demo': Active Block Commit for /var/lib/libvirt/images/demo.qcow2 completed",
        ],
    ),
    Case(
        "block-job-2-backup",
        EventID.BLOCK_JOB_2,
        BlockJob(disk="vda", type=BlockJobType.BACKUP, status=BlockJobStatus.CANCELED),
        7,
        [
            "myDomainEventBlockJob2Callback: Domain demo(7) 5 on disk vda Canceled",
        ],
        [
            "myDomainEventBlockJobCallback EVENT: Domain demo(7) block job callback 'VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2' disk 'vda', type 'backup' status 'cancelled'",
        ],
        [
            "event 'block-job-2' for domain 'demo': Backup for vda canceled",
        ],
    ),
    Case(
        "block-job-unknown-type",
        EventID.BLOCK_JOB_2,
        BlockJob(disk="vda", type=BlockJobType.UNKNOWN, status=BlockJobStatus.READY),
        7,
        [
            "myDomainEventBlockJob2Callback: Domain demo(7) unknown on disk vda Ready",
        ],
        [
            "myDomainEventBlockJobCallback EVENT: Domain demo(7) block job callback 'VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2' disk 'vda', type 'unknown' status 'ready'",
        ],
        [
            "event 'block-job-2' for domain 'demo': Unknown job for vda ready",
        ],
    ),
    Case(
        "disk-change",
        EventID.DISK_CHANGE,
        DiskChange(
            old_src_path="/isos/install.iso",
            new_src_path=None,
            dev_alias="sata0-0-0",
            reason=DiskChangeReason.MISSING_ON_START,
        ),
        7,
        [
            "myDomainEventDiskChangeCallback: Domain demo(7) disk change oldSrcPath: /isos/install.iso newSrcPath: None devAlias: sata0-0-0 reason: Change missing on start",
        ],
        [
            "myDomainEventDiskChangeCallback EVENT: Domain demo(7) disk change oldSrcPath: /isos/install.iso newSrcPath: (null) devAlias: sata0-0-0 reason: disk empty due to startupPolicy",
        ],
        [
            "event 'disk-change' for domain 'demo' disk sata0-0-0: /isos/install.iso -> <null>: changed",
        ],
    ),
    Case(
        "disk-change-dropped",
        EventID.DISK_CHANGE,
        DiskChange(
            old_src_path=None,
            new_src_path=None,
            dev_alias="sata0-0-0",
            reason=DiskChangeReason.DROP_MISSING_ON_START,
        ),
        -1,
        [
            "myDomainEventDiskChangeCallback: Domain demo(-1) disk change oldSrcPath: None newSrcPath: None devAlias: sata0-0-0 reason: Drop missing on start",
        ],
        [
            "myDomainEventDiskChangeCallback EVENT: Domain demo(-1) disk change oldSrcPath: (null) newSrcPath: (null) devAlias: sata0-0-0 reason: disk dropped due to startupPolicy",
        ],
        [
            "event 'disk-change' for domain 'demo' disk sata0-0-0: <null> -> <null>: dropped",
        ],
    ),
    Case(
        "tray-change",
        EventID.TRAY_CHANGE,
        TrayChange(dev_alias="ide0-1-0", reason=TrayChangeReason.CLOSE),
        7,
        [
            "myDomainEventTrayChangeCallback: Domain demo(7) tray change devAlias: ide0-1-0 reason: Closed",
        ],
        [
            "myDomainEventTrayChangeCallback EVENT: Domain demo(7) removable disk's tray change devAlias: ide0-1-0 reason: close",
        ],
        [
            "event 'tray-change' for domain 'demo' disk ide0-1-0: closed",
        ],
    ),
    Case(
        "pm-wakeup",
        EventID.PMWAKEUP,
        PMReason(),
        7,
        [
            "myDomainEventPMWakeupCallback: Domain demo(7) system pmwakeup",
        ],
        [
            "myDomainEventPMWakeupCallback EVENT: Domain demo(7) system pmwakeup",
        ],
        [
            "event 'pm-wakeup' for domain 'demo'",
        ],
    ),
    Case(
        "pm-suspend",
        EventID.PMSUSPEND,
        PMReason(),
        7,
        [
            "myDomainEventPMSuspendCallback: Domain demo(7) system pmsuspend",
        ],
        [
            "myDomainEventPMSuspendCallback EVENT: Domain demo(7) system pmsuspend",
        ],
        [
            "event 'pm-suspend' for domain 'demo'",
        ],
    ),
    Case(
        "balloon-change",
        EventID.BALLOON_CHANGE,
        BalloonChange(actual=1048576),
        7,
        [
            "myDomainEventBalloonChangeCallback: Domain demo(7) 1048576",
        ],
        [
            "myDomainEventBalloonChangeCallback EVENT: Domain demo(7) balloon change 1048576KB",
        ],
        [
            "event 'balloon-change' for domain 'demo': 1048576KiB",
        ],
    ),
    Case(
        "pm-suspend-disk",
        EventID.PMSUSPEND_DISK,
        PMReason(),
        7,
        [
            "myDomainEventPMSuspendDiskCallback: Domain demo(7) system pmsuspend_disk",
        ],
        [
            "myDomainEventPMSuspendDiskCallback EVENT: Domain demo(7) system pmsuspend-disk",
        ],
        [
            "event 'pm-suspend-disk' for domain 'demo'",
        ],
    ),
    Case(
        "device-removed",
        EventID.DEVICE_REMOVED,
        Device(dev_alias="net0"),
        7,
        [
            "myDomainEventDeviceRemovedCallback: Domain demo(7) device removed: net0",
        ],
        [
            "myDomainEventDeviceRemovedCallback EVENT: Domain demo(7) device removed: net0",
        ],
        [
            "event 'device-removed' for domain 'demo': net0",
        ],
    ),
    Case(
        "tunable",
        EventID.TUNABLE,
        TypedParams(
            params={
                "cputune.vcpupin0": "0-1",
                "cputune.emulator_quota": -1,
                "cputune.global_period": 100000,
            }
        ),
        7,
        [
            "myDomainEventTunableCallback: Domain demo(7) {'cputune.vcpupin0': '0-1', 'cputune.emulator_quota': -1, 'cputune.global_period': 100000}",
        ],
        [
            "myDomainEventTunableCallback EVENT: Domain demo(7) tunable updated:",
            "\tcputune.vcpupin0: 0-1",
            "\tcputune.emulator_quota: -1",
            "\tcputune.global_period: 100000",
        ],
        [
            "event 'tunable' for domain 'demo':",
            "\tcputune.vcpupin0: 0-1",
            "\tcputune.emulator_quota: -1",
            "\tcputune.global_period: 100000",
        ],
    ),
    Case(
        "agent-lifecycle",
        EventID.AGENT_LIFECYCLE,
        AgentLifecycle(state=AgentState.CONNECTED, reason=AgentReason.CHANNEL),
        7,
        [
            "myDomainEventAgentLifecycleCallback: Domain demo(7) connected channel event",
        ],
        [
            "myDomainEventAgentLifecycleCallback EVENT: Domain demo(7) guest agent state changed: Connected reason: Channel event",
        ],
        [
            "event 'agent-lifecycle' for domain 'demo': state: 'connected' reason: 'channel event'",
        ],
    ),
    Case(
        "agent-lifecycle-disconnected",
        EventID.AGENT_LIFECYCLE,
        AgentLifecycle(state=AgentState.DISCONNECTED, reason=AgentReason.DOMAIN_STARTED),
        7,
        [
            "myDomainEventAgentLifecycleCallback: Domain demo(7) disconnected domain started",
        ],
        [
            "myDomainEventAgentLifecycleCallback EVENT: Domain demo(7) guest agent state changed: Disconnected reason: Domain started",
        ],
        [
            "event 'agent-lifecycle' for domain 'demo': state: 'disconnected' reason: 'domain started'",
        ],
    ),
    Case(
        "device-added",
        EventID.DEVICE_ADDED,
        Device(dev_alias="virtio-disk1"),
        7,
        [
            "myDomainEventDeviceAddedCallback: Domain demo(7) device added: virtio-disk1",
        ],
        [
            "myDomainEventDeviceAddedCallback EVENT: Domain demo(7) device added: virtio-disk1",
        ],
        [
            "event 'device-added' for domain 'demo': virtio-disk1",
        ],
    ),
    Case(
        "migration-iteration",
        EventID.MIGRATION_ITERATION,
        MigrationIteration(iteration=2),
        7,
        [
            "myDomainEventMigrationIteration: Domain demo(7) started migration iteration 2",
        ],
        [
            "myDomainEventMigrationIterationCallback EVENT: Domain demo(7) migration iteration '2'",
        ],
        [
            "event 'migration-iteration' for domain 'demo': iteration: '2'",
        ],
    ),
    Case(
        "job-completed",
        EventID.JOB_COMPLETED,
        TypedParams(
            params={
                "type": 3,
                "operation": 1,
                "time_elapsed": 2431,
                "success": True,
                "compression_ratio": 0.25,
            }
        ),
        7,
        [
            "myDomainEventJobCompletedCallback: Domain demo(7) {'type': 3, 'operation': 1, 'time_elapsed': 2431, 'success': True, 'compression_ratio': 0.25}",
        ],
        [
            "myDomainEventJobCompletedCallback EVENT: Domain demo(7) job completed:",
            "\ttype: 3",
            "\toperation: 1",
            "\ttime_elapsed: 2431",
            "\tsuccess: 1",
            "\tcompression_ratio: 0.25",
        ],
        [
            "event 'job-completed' for domain 'demo':",
            "\ttype: 3",
            "\toperation: 1",
            "\ttime_elapsed: 2431",
            "\tsuccess: 1",
            "\tcompression_ratio: 0.25",
        ],
    ),
    Case(
        "device-removal-failed",
        EventID.DEVICE_REMOVAL_FAILED,
        Device(dev_alias="dimm0"),
        7,
        [
            "myDomainEventDeviceRemovalFailedCallback: Domain demo(7) failed to remove device: dimm0",
        ],
        [
            "myDomainEventDeviceRemovalFailedCallback EVENT: Domain demo(7) device removal failed: dimm0",
        ],
        [
            "event 'device-removal-failed' for domain 'demo': dimm0",
        ],
    ),
    Case(
        "metadata-change",
        EventID.METADATA_CHANGE,
        MetadataChange(type=MetadataType.ELEMENT, nsuri="http://example.org/app/1.0"),
        -1,
        [
            "myDomainEventMetadataChangeCallback: Domain demo(-1) changed metadata mtype=2 nsuri=http://example.org/app/1.0",
        ],
        [
            "myDomainEventMetadataChangeCallback EVENT: Domain demo(-1) metadata type: element (http://example.org/app/1.0)",
        ],
        [
            "event 'metadata-change' for domain 'demo': type element, uri http://example.org/app/1.0",
        ],
    ),
    Case(
        "metadata-change-title",
        EventID.METADATA_CHANGE,
        MetadataChange(type=MetadataType.TITLE, nsuri=None),
        7,
        [
            "myDomainEventMetadataChangeCallback: Domain demo(7) changed metadata mtype=1 nsuri=None",
        ],
        [
            "myDomainEventMetadataChangeCallback EVENT: Domain demo(7) metadata type: title (n/a)",
        ],
        [
            "event 'metadata-change' for domain 'demo': type title, uri <null>",
        ],
    ),
    Case(
        "block-threshold",
        EventID.BLOCK_THRESHOLD,
        BlockThreshold(
            dev="vda", path="/var/lib/libvirt/images/demo.qcow2", threshold=1073741824, excess=65536
        ),
        7,
        [
            "myDomainEventBlockThresholdCallback: Domain demo(7) block device vda(/var/lib/libvirt/images/demo.qcow2) threshold 1073741824 exceeded by 65536",
        ],
        [
            "myDomainEventBlockThresholdCallback EVENT: Domain demo(7) block threshold callback dev 'vda'(/var/lib/libvirt/images/demo.qcow2), threshold: '1073741824', excess: '65536'",
        ],
        [
            "event 'block-threshold' for domain 'demo': dev: vda(/var/lib/libvirt/images/demo.qcow2) 1073741824 65536",
        ],
    ),
    Case(
        "block-threshold-index",
        EventID.BLOCK_THRESHOLD,
        BlockThreshold(dev="vda[2]", path=None, threshold=1073741824, excess=0),
        7,
        [
            "myDomainEventBlockThresholdCallback: Domain demo(7) block device vda[2](None) threshold 1073741824 exceeded by 0",
        ],
        [
            "myDomainEventBlockThresholdCallback EVENT: Domain demo(7) block threshold callback dev 'vda[2]'(<null>), threshold: '1073741824', excess: '0'",
        ],
        [
            "event 'block-threshold' for domain 'demo': dev: vda[2](<null>) 1073741824 0",
        ],
    ),
    Case(
        "memory-failure",
        EventID.MEMORY_FAILURE,
        MemoryFailure(
            recipient=MemoryFailureRecipient.GUEST,
            action=MemoryFailureAction.INJECT,
            flags=MemoryFailureFlags.ACTION_REQUIRED,
        ),
        7,
        [
            "myDomainEventMemoryFailureCallback: Domain demo(7) memory failure recipient 1 action 1 flags 1",
        ],
        [
            "myDomainEventMemoryFailureCallback EVENT: Domain demo(7) memory failure: recipient '1', aciont '1', flags '0x1'",
        ],
        [
            "event 'memory-failure' for domain 'demo':",
            "recipient: guest",
            "action: inject",
            "flags:",
            "\taction required: 1",
            "\trecursive: 0",
        ],
    ),
    Case(
        "memory-failure-both-flags",
        EventID.MEMORY_FAILURE,
        MemoryFailure(
            recipient=MemoryFailureRecipient.HYPERVISOR, action=MemoryFailureAction.FATAL, flags=3
        ),
        7,
        [
            "myDomainEventMemoryFailureCallback: Domain demo(7) memory failure recipient 0 action 2 flags 3",
        ],
        [
            "myDomainEventMemoryFailureCallback EVENT: Domain demo(7) memory failure: recipient '0', aciont '2', flags '0x3'",
        ],
        [
            "event 'memory-failure' for domain 'demo':",
            "recipient: hypervisor",
            "action: fatal",
            "flags:",
            "\taction required: 1",
            "\trecursive: 1",
        ],
    ),
    Case(
        "memory-device-size-change",
        EventID.MEMORY_DEVICE_SIZE_CHANGE,
        MemoryDeviceSizeChange(alias="virtiomem0", size=2097152),
        7,
        [
            "myDomainEventMemoryDeviceSizeChangeCallback: Domain demo(7) memory device size change alias virtiomem0 size 2097152",
        ],
        [
            "myDomainEventMemoryDeviceSizeChangeCallback EVENT: Domain demo(7) memory device size change: alias: 'virtiomem0' new size 2097152'",
        ],
        [
            "event 'memory-device-size-change' for domain 'demo':",
            "alias: virtiomem0",
            "size: 2097152",
        ],
    ),
    Case(
        "nic-mac-change",
        EventID.NIC_MAC_CHANGE,
        NicMacChange(alias="net0", old_mac="52:54:00:8a:3b:01", new_mac="52:54:00:8a:3b:02"),
        7,
        [
            "myDomainEventNICMACChangeCallback: Domain demo(7) NIC MAC change alias net0 old MAC: 52:54:00:8a:3b:01 new MAC: 52:54:00:8a:3b:02",
        ],
        [
            "myDomainEventNICMACChangeCallback EVENT: Domain demo(7) NIC MAC changed: alias: 'net0' oldMAC: '52:54:00:8a:3b:01' newMAC: '52:54:00:8a:3b:02'",
        ],
        [
            "event 'nic-mac-change' for domain 'demo':",
            "alias: net0",
            "oldMAC: 52:54:00:8a:3b:01",
            "newMAC: 52:54:00:8a:3b:02",
        ],
    ),
]


def _lines(row: Row | Case, style: str) -> list[str]:
    lines: list[str] = getattr(row, style)
    return lines


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("row", LIFECYCLE, ids=lambda r: f"{r.event.name}/{r.detail}")
def test_lifecycle_lines(row: Row, style: str) -> None:
    event = lifecycle(row.event, row.detail, row.domain_id)
    assert format_event(event, style) == _lines(row, style)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("case", EVENTS, ids=lambda c: c.name)
def test_event_lines(case: Case, style: str) -> None:
    event = make(case.kind, case.payload, case.domain_id)
    assert format_event(event, style) == _lines(case, style)


def test_every_event_id_has_a_case() -> None:
    covered = {EventID.LIFECYCLE} | {case.kind for case in EVENTS}
    assert covered == set(EventID) - {EventID.QEMU_MONITOR}


def test_every_lifecycle_pair_has_a_row() -> None:
    enums: dict[EventType, Any] = {
        EventType.DEFINED: DefinedDetail,
        EventType.UNDEFINED: UndefinedDetail,
        EventType.STARTED: StartedDetail,
        EventType.SUSPENDED: SuspendedDetail,
        EventType.RESUMED: ResumedDetail,
        EventType.STOPPED: StoppedDetail,
        EventType.SHUTDOWN: ShutdownDetail,
        EventType.PMSUSPENDED: PMSuspendedDetail,
        EventType.CRASHED: CrashedDetail,
    }
    expected = {(event, int(detail)) for event, enum in enums.items() for detail in enum}
    assert {(row.event, int(row.detail)) for row in LIFECYCLE} == expected


# --- the worked examples of the reference --------------------------------------------------


def test_reference_examples_python() -> None:
    # Scenario 6 (guest complies with a shutdown request): the STOPPED event still carries
    # the running ID because the EOF path creates it before stopping the domain.
    assert format_event(lifecycle(EventType.SHUTDOWN, ShutdownDetail.GUEST), "python") == [
        "myDomainEventCallback1 EVENT: Domain demo(7) Shutdown On guest request",
        "myDomainEventCallback2 EVENT: Domain demo(7) Shutdown On guest request",
    ]
    assert format_event(lifecycle(EventType.STOPPED, StoppedDetail.SHUTDOWN), "python") == [
        "myDomainEventCallback1 EVENT: Domain demo(7) Stopped Shutdown",
        "myDomainEventCallback2 EVENT: Domain demo(7) Stopped Shutdown",
    ]
    # Scenario 7 (destroy): created after the stop, so ID -1.
    destroyed = lifecycle(EventType.STOPPED, StoppedDetail.DESTROYED, -1)
    assert format_event(destroyed, "python") == [
        "myDomainEventCallback1 EVENT: Domain demo(-1) Stopped Destroyed",
        "myDomainEventCallback2 EVENT: Domain demo(-1) Stopped Destroyed",
    ]


def at(text: str) -> Timestamp:
    """'2026-11-25 19:57:13.983456' (UTC) as a QMP timestamp."""
    moment = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
    return Timestamp(calendar.timegm(moment.timetuple()), moment.microsecond)


def test_virsh_timestamp_transcript() -> None:
    """`virsh event --all --loop --timestamp` from the libvirt 9.0 run (qemu-guests §6.3)."""
    run = [
        ("2026-11-25 19:57:13.983512", EventType.DEFINED, DefinedDetail.ADDED),
        ("2026-11-25 19:57:14.263001", EventType.RESUMED, ResumedDetail.UNPAUSED),
        ("2026-11-25 19:57:14.263999", EventType.STARTED, StartedDetail.BOOTED),
        ("2026-11-25 19:57:14.786000", EventType.SUSPENDED, SuspendedDetail.PAUSED),
        ("2026-11-25 19:57:14.804410", EventType.RESUMED, ResumedDetail.UNPAUSED),
        ("2026-11-25 19:57:14.827000", None, None),
        ("2026-11-25 19:57:14.859000", None, None),
        ("2026-11-25 19:57:15.398700", EventType.SHUTDOWN, ShutdownDetail.GUEST),
        ("2026-11-25 19:57:15.601000", EventType.STOPPED, StoppedDetail.SHUTDOWN),
        ("2026-11-25 19:57:16.680000", EventType.RESUMED, ResumedDetail.UNPAUSED),
        ("2026-11-25 19:57:16.681000", EventType.STARTED, StartedDetail.BOOTED),
        ("2026-11-25 19:57:17.202000", EventType.SHUTDOWN, ShutdownDetail.HOST),
        ("2026-11-25 19:57:17.203000", EventType.STOPPED, StoppedDetail.DESTROYED),
        ("2026-11-25 19:57:17.237000", EventType.UNDEFINED, UndefinedDetail.REMOVED),
    ]
    printed = []
    for when, event_type, detail in run:
        if event_type is None or detail is None:
            event = make(EventID.REBOOT, Empty(), 1, name="vs-acpi", timestamp=at(when))
        else:
            event = lifecycle(event_type, detail, 1, name="vs-acpi", timestamp=at(when))
        printed += format_event(event, "virsh", timestamp=True)
    assert printed == [
        "2026-11-25 19:57:13.983+0000: event 'lifecycle' for domain 'vs-acpi': Defined Added",
        "2026-11-25 19:57:14.263+0000: event 'lifecycle' for domain 'vs-acpi': Resumed Unpaused",
        "2026-11-25 19:57:14.263+0000: event 'lifecycle' for domain 'vs-acpi': Started Booted",
        "2026-11-25 19:57:14.786+0000: event 'lifecycle' for domain 'vs-acpi': Suspended Paused",
        "2026-11-25 19:57:14.804+0000: event 'lifecycle' for domain 'vs-acpi': Resumed Unpaused",
        "2026-11-25 19:57:14.827+0000: event 'reboot' for domain 'vs-acpi'",
        "2026-11-25 19:57:14.859+0000: event 'reboot' for domain 'vs-acpi'",
        "2026-11-25 19:57:15.398+0000: event 'lifecycle' for domain 'vs-acpi': Shutdown Finished after guest request",
        "2026-11-25 19:57:15.601+0000: event 'lifecycle' for domain 'vs-acpi': Stopped Shutdown",
        "2026-11-25 19:57:16.680+0000: event 'lifecycle' for domain 'vs-acpi': Resumed Unpaused",
        "2026-11-25 19:57:16.681+0000: event 'lifecycle' for domain 'vs-acpi': Started Booted",
        "2026-11-25 19:57:17.202+0000: event 'lifecycle' for domain 'vs-acpi': Shutdown Finished after host request",
        "2026-11-25 19:57:17.203+0000: event 'lifecycle' for domain 'vs-acpi': Stopped Destroyed",
        "2026-11-25 19:57:17.237+0000: event 'lifecycle' for domain 'vs-acpi': Undefined Removed",
    ]


# --- timestamps -------------------------------------------------------------------------------


def test_virsh_timestamp_without_event_time_is_the_epoch() -> None:
    assert format_event(make(EventID.REBOOT, Empty()), "virsh", timestamp=True) == [
        "1970-01-01 00:00:00.000+0000: event 'reboot' for domain 'demo'"
    ]


def test_virsh_timestamp_prefixes_only_the_first_line_of_a_message() -> None:
    payload = NicMacChange(alias="net0", old_mac="52:54:00:8a:3b:01", new_mac="52:54:00:8a:3b:02")
    event = make(EventID.NIC_MAC_CHANGE, payload, timestamp=at("2026-01-02 03:04:05.000999"))
    assert format_event(event, "virsh", timestamp=True) == [
        "2026-01-02 03:04:05.000+0000: event 'nic-mac-change' for domain 'demo':",
        "alias: net0",
        "oldMAC: 52:54:00:8a:3b:01",
        "newMAC: 52:54:00:8a:3b:02",
    ]


@pytest.mark.parametrize("style", ["python", "c"])
def test_timestamp_is_a_virsh_option(style: str) -> None:
    with pytest.raises(ValueError, match="virsh"):
        format_event(make(EventID.REBOOT, Empty()), style, timestamp=True)


# --- the generic QEMU monitor event -----------------------------------------------------------

SHUTDOWN_QMP = QemuMonitor(event="SHUTDOWN", data={"guest": True, "reason": "guest-shutdown"})
WHEN = Timestamp(1795636633, 983512)  # 2026-11-25 19:57:13.983512 UTC


@pytest.mark.parametrize("style", STYLES)
def test_monitor_events_are_silent_unless_asked_for(style: str) -> None:
    assert format_event(make(EventID.QEMU_MONITOR, SHUTDOWN_QMP), style) == []


def test_monitor_event_lines() -> None:
    event = make(EventID.QEMU_MONITOR, SHUTDOWN_QMP, timestamp=WHEN)
    assert format_event(event, "python", monitor_events=True) == [
        'myDomainEventQemuMonitorCallback: Domain demo(7) SHUTDOWN {"guest":true,"reason":"guest-shutdown"}'
    ]
    assert format_event(event, "c", monitor_events=True) == [
        'myDomainEventQemuMonitorCallback EVENT: Domain demo(7) SHUTDOWN {"guest":true,"reason":"guest-shutdown"}'
    ]
    assert format_event(event, "virsh", monitor_events=True) == [
        "event SHUTDOWN at 1795636633.983512 for domain 'demo': "
        '{"guest":true,"reason":"guest-shutdown"}'
    ]
    # qemu-monitor-event --timestamp replaces the "at SECONDS.MICROS" part.
    assert format_event(event, "virsh", monitor_events=True, timestamp=True) == [
        "2026-11-25 19:57:13.983+0000: event SHUTDOWN for domain 'demo': "
        '{"guest":true,"reason":"guest-shutdown"}'
    ]


def test_monitor_event_without_data_or_time() -> None:
    event = make(EventID.QEMU_MONITOR, QemuMonitor(event="STOP"))
    assert format_event(event, "python", monitor_events=True) == [
        "myDomainEventQemuMonitorCallback: Domain demo(7) STOP None"
    ]
    assert format_event(event, "c", monitor_events=True) == [
        "myDomainEventQemuMonitorCallback EVENT: Domain demo(7) STOP <null>"
    ]
    assert format_event(event, "virsh", monitor_events=True) == [
        "event STOP at 0.000000 for domain 'demo': <null>"
    ]


# --- values outside the tables, and misuse ------------------------------------------------------


def test_values_the_tables_do_not_know() -> None:
    # Payload structs do not validate on construction, so a newer libvirt's value can arrive.
    watchdog = make(EventID.WATCHDOG, Watchdog(action=9))  # type: ignore[arg-type]
    assert format_event(watchdog, "python") == ["myDomainEventWatchdogCallback: Domain demo(7) 9"]
    assert format_event(watchdog, "c") == [
        "myDomainEventWatchdogCallback EVENT: Domain demo(7) watchdog action=9"
    ]
    assert format_event(watchdog, "virsh") == ["event 'watchdog' for domain 'demo': unknown"]
    agent = make(EventID.AGENT_LIFECYCLE, AgentLifecycle(state=0, reason=5))  # type: ignore[arg-type]
    assert format_event(agent, "python") == [
        "myDomainEventAgentLifecycleCallback: Domain demo(7) unknown 5"
    ]
    assert format_event(agent, "c") == [
        "myDomainEventAgentLifecycleCallback EVENT: Domain demo(7) guest agent state changed: unknown reason: unknown"
    ]
    assert format_event(agent, "virsh") == [
        "event 'agent-lifecycle' for domain 'demo': state: 'unknown' reason: 'unsupported value'"
    ]


def test_typed_parameter_of_no_known_type() -> None:
    event = make(EventID.TUNABLE, TypedParams(params={"a": 1, "b": None, "c": 2.5e-7}))
    assert format_event(event, "c") == [
        "myDomainEventTunableCallback EVENT: Domain demo(7) tunable updated:",
        "\ta: 1",
        "\tb: unknown type",
        "\tc: 2.5e-07",
    ]
    # virTypedParameterToString() gives nothing for it, and virsh skips the parameter.
    assert format_event(event, "virsh") == [
        "event 'tunable' for domain 'demo':",
        "\ta: 1",
        "\tc: 2.5e-07",
    ]


def test_unsigned_fields_print_as_unsigned_in_c_and_virsh() -> None:
    event = make(EventID.BALLOON_CHANGE, BalloonChange(actual=-1))
    assert format_event(event, "c") == [
        "myDomainEventBalloonChangeCallback EVENT: Domain demo(7) balloon change 18446744073709551615KB"
    ]
    assert format_event(event, "virsh") == [
        "event 'balloon-change' for domain 'demo': 18446744073709551615KiB"
    ]


def test_unknown_style_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'xml'.*python, c, virsh"):
        format_event(make(EventID.REBOOT, Empty()), "xml")


def test_payload_must_match_the_kind() -> None:
    with pytest.raises(TypeError, match="REBOOT"):
        format_event(make(EventID.REBOOT, RtcChange(utcoffset=1)), "python")


# --- everything formats ------------------------------------------------------------------------

SAMPLES: dict[EventID, Payload] = {case.kind: case.payload for case in reversed(EVENTS)}
SAMPLES[EventID.QEMU_MONITOR] = SHUTDOWN_QMP


@pytest.mark.parametrize("style", STYLES)
def test_every_event_formats_in_every_style(style: str) -> None:
    for kind in EventID:
        if kind is EventID.LIFECYCLE:
            continue
        event = make(kind, SAMPLES[kind], timestamp=WHEN)
        lines = format_event(event, style, monitor_events=True)
        assert lines, kind
        assert all(isinstance(line, str) and "\n" not in line for line in lines), kind
        if style == "virsh":
            assert format_event(event, style, monitor_events=True, timestamp=True)
    for row in LIFECYCLE:
        for domain_id in (7, -1):
            event = lifecycle(row.event, row.detail, domain_id, timestamp=WHEN)
            expected = 1 if style == "virsh" else 2
            assert len(format_event(event, style)) == expected, row
