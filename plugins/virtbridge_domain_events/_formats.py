"""One event as the lines a libvirt event printer would print for it.

Pure formatting: no I/O, no clock (the ``virsh --timestamp`` prefix comes from the event's
own timestamp).  The styles, and the program each one imitates:

* ``"python"``: libvirt-python's ``examples/event-test.py``;
* ``"c"``: libvirt's ``examples/c/misc/event-test.c``;
* ``"virsh"``: ``virsh event --all --loop`` (and ``virsh qemu-monitor-event --loop`` for the
  generic QEMU monitor event).

Each program is reproduced with its quirks, because scripts parse this output: the Python
tables print an unknown index as its number, the C and virsh ones print ``unknown``; both
example programs register the lifecycle callback twice and so print two lines per lifecycle
event.  The tables themselves are in :mod:`._tables`.
"""

from __future__ import annotations

from typing import Any

from virtbridge import (
    AgentLifecycle,
    BalloonChange,
    BlockJob,
    BlockThreshold,
    Device,
    DiskChange,
    Empty,
    Event,
    EventID,
    Graphics,
    IoError,
    IoErrorReason,
    Lifecycle,
    MemoryDeviceSizeChange,
    MemoryFailure,
    MetadataChange,
    MigrationIteration,
    NicMacChange,
    PMReason,
    QemuMonitor,
    RtcChange,
    TrayChange,
    TypedParams,
    Watchdog,
)
from virtbridge_domain_events._examples import render_c, render_python
from virtbridge_domain_events._virsh import render_virsh

STYLES = ("python", "c", "virsh")
"""The accepted values of ``style``."""

_PAYLOADS: dict[EventID, type[Any]] = {
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


def format_event(
    event: Event, style: str, *, monitor_events: bool = False, timestamp: bool = False
) -> list[str]:
    """Return the lines (without newlines) that ``style``'s program prints for ``event``.

    ``monitor_events``: print the generic QEMU monitor event (``EventID.QEMU_MONITOR``);
    without it that event gives no lines, as it does for programs that never register it.
    ``timestamp``: prefix the output as ``virsh event --timestamp`` does, from
    ``event.timestamp`` (the epoch when it has none); only the ``virsh`` style has it.

    Raises ``ValueError`` for an unknown style or ``timestamp`` outside the virsh style, and
    ``TypeError`` when the payload does not belong to ``event.kind``.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}: expected one of {', '.join(STYLES)}")
    if timestamp and style != "virsh":
        raise ValueError(f"timestamp=True needs style 'virsh' (style {style!r} has no timestamps)")
    expected = _PAYLOADS[event.kind]
    if not isinstance(event.payload, expected):
        raise TypeError(
            f"a {event.kind.name} event carries {expected.__name__}, "
            f"not {type(event.payload).__name__}"
        )
    if event.kind is EventID.QEMU_MONITOR and not monitor_events:
        return []
    if style == "python":
        text = render_python(event)
    elif style == "c":
        text = render_c(event)
    else:
        text = render_virsh(event, timestamp)
    # Each program ends every message with a newline; one message may hold several lines.
    return text.removesuffix("\n").split("\n")
