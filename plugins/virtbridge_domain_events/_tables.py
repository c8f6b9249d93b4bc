"""The string tables and format strings of the three programs the printer imitates.

Copied exactly, because they are the output format:

* ``python``: libvirt-python ``examples/event-test.py`` (HEAD, 2026-05);
* ``c``: libvirt ``examples/c/misc/event-test.c`` (the newest stored copy, which already has
  NIC_MAC_CHANGE);
* ``virsh``: libvirt ``tools/virsh-domain-event.c`` (same snapshot) for ``virsh event``, with
  the block-job names of ``tools/virsh-util.c``; ``qemu-monitor-event`` from
  ``tools/virsh-domain.c``.

C and virsh format strings are rewritten for Python's ``%`` operator (``%" PRIu64 "``,
``%lld`` and ``%llu`` become ``%d``; positional ``%1$s`` becomes ``%s``); the text between
the conversions is unchanged.  A table index that the program does not know is handled by
the caller the way that program does (the number for Python, ``"unknown"`` and friends for
C and virsh).
"""

from __future__ import annotations

from virtbridge import EventID, EventType, ShutdownDetail, StoppedDetail

# --- libvirt-python examples/event-test.py -------------------------------------------------

PY_DOM_EVENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Defined", ("Added", "Updated", "Renamed", "Snapshot")),
    ("Undefined", ("Removed", "Renamed")),
    ("Started", ("Booted", "Migrated", "Restored", "Snapshot", "Wakeup")),
    (
        "Suspended",
        (
            "Paused",
            "Migrated",
            "IOError",
            "Watchdog",
            "Restored",
            "Snapshot",
            "API error",
            "Postcopy",
            "Postcopy failed",
        ),
    ),
    ("Resumed", ("Unpaused", "Migrated", "Snapshot", "Postcopy")),
    # Index 7 says "Daemon" (added for SHUTOFF_DAEMON), but STOPPED detail 7 is RECREATED.
    (
        "Stopped",
        ("Shutdown", "Destroyed", "Crashed", "Migrated", "Saved", "Failed", "Snapshot", "Daemon"),
    ),
    ("Shutdown", ("Finished", "On guest request", "On host request")),
    ("PMSuspended", ("Memory", "Disk")),
    ("Crashed", ("Panicked",)),
)
PY_BLOCK_JOB_TYPES = ("unknown", "Pull", "Copy", "Commit", "ActiveCommit")
PY_BLOCK_JOB_STATUS = ("Completed", "Failed", "Canceled", "Ready")
PY_WATCHDOG_ACTIONS = ("none", "Pause", "Reset", "Poweroff", "Shutdown", "Debug", "Inject NMI")
PY_ERROR_EVENTS = ("None", "Pause", "Report")
PY_AGENT_STATES = ("unknown", "connected", "disconnected")
PY_AGENT_REASONS = ("unknown", "domain started", "channel event")
PY_GRAPHICS_PHASES = ("Connect", "Initialize", "Disconnect")
PY_DISK_EVENTS = ("Change missing on start", "Drop missing on start")
PY_TRAY_EVENTS = ("Opened", "Closed")

PY_LIFECYCLE = "myDomainEventCallback%s EVENT: Domain %s(%s) %s %s"
PY_FORMATS: dict[EventID, str] = {
    EventID.REBOOT: "myDomainEventRebootCallback: Domain %s(%s)",
    EventID.RTC_CHANGE: "myDomainEventRTCChangeCallback: Domain %s(%s) %d",
    EventID.WATCHDOG: "myDomainEventWatchdogCallback: Domain %s(%s) %s",
    EventID.IO_ERROR: "myDomainEventIOErrorCallback: Domain %s(%s) %s %s %s",
    EventID.GRAPHICS: "myDomainEventGraphicsCallback: Domain %s(%s) %s %s",
    EventID.IO_ERROR_REASON: "myDomainEventIOErrorReasonCallback: Domain %s(%s) %s %s %s %s",
    EventID.CONTROL_ERROR: "myDomainEventControlErrorCallback: Domain %s(%s)",
    EventID.BLOCK_JOB: "myDomainEventBlockJobCallback: Domain %s(%s) %s on disk %s %s",
    EventID.DISK_CHANGE: "myDomainEventDiskChangeCallback: Domain %s(%s) disk change "
    "oldSrcPath: %s newSrcPath: %s devAlias: %s reason: %s",
    EventID.TRAY_CHANGE: "myDomainEventTrayChangeCallback: Domain %s(%s) tray change "
    "devAlias: %s reason: %s",
    EventID.PMWAKEUP: "myDomainEventPMWakeupCallback: Domain %s(%s) system pmwakeup",
    EventID.PMSUSPEND: "myDomainEventPMSuspendCallback: Domain %s(%s) system pmsuspend",
    EventID.BALLOON_CHANGE: "myDomainEventBalloonChangeCallback: Domain %s(%s) %d",
    EventID.PMSUSPEND_DISK: "myDomainEventPMSuspendDiskCallback: Domain %s(%s) "
    "system pmsuspend_disk",
    EventID.DEVICE_REMOVED: "myDomainEventDeviceRemovedCallback: Domain %s(%s) device removed: %s",
    EventID.BLOCK_JOB_2: "myDomainEventBlockJob2Callback: Domain %s(%s) %s on disk %s %s",
    EventID.TUNABLE: "myDomainEventTunableCallback: Domain %s(%s) %s",
    EventID.AGENT_LIFECYCLE: "myDomainEventAgentLifecycleCallback: Domain %s(%s) %s %s",
    EventID.DEVICE_ADDED: "myDomainEventDeviceAddedCallback: Domain %s(%s) device added: %s",
    EventID.MIGRATION_ITERATION: "myDomainEventMigrationIteration: Domain %s(%s) "
    "started migration iteration %d",
    EventID.JOB_COMPLETED: "myDomainEventJobCompletedCallback: Domain %s(%s) %s",
    EventID.DEVICE_REMOVAL_FAILED: "myDomainEventDeviceRemovalFailedCallback: Domain %s(%s) "
    "failed to remove device: %s",
    EventID.METADATA_CHANGE: "myDomainEventMetadataChangeCallback: Domain %s(%s) "
    "changed metadata mtype=%d nsuri=%s",
    EventID.BLOCK_THRESHOLD: "myDomainEventBlockThresholdCallback: Domain %s(%s) "
    "block device %s(%s) threshold %d exceeded by %d",
    EventID.MEMORY_FAILURE: "myDomainEventMemoryFailureCallback: Domain %s(%s) "
    "memory failure recipient %d action %d flags %d",
    # Upstream this callback raises NameError (its parameters are misnamed); this is the line
    # its format string describes.
    EventID.MEMORY_DEVICE_SIZE_CHANGE: "myDomainEventMemoryDeviceSizeChangeCallback: "
    "Domain %s(%s) memory device size change alias %s size %d",
    EventID.NIC_MAC_CHANGE: "myDomainEventNICMACChangeCallback: Domain %s(%s) "
    "NIC MAC change alias %s old MAC: %s new MAC: %s",
    # Not in event-test.py (it never registers monitor events): virtbridge's own line in the
    # same shape, for monitor_events=True.
    EventID.QEMU_MONITOR: "myDomainEventQemuMonitorCallback: Domain %s(%s) %s %s",
}

# --- libvirt examples/c/misc/event-test.c ---------------------------------------------------

C_UNKNOWN = "unknown"
C_EVENTS = (
    "Defined",
    "Undefined",
    "Started",
    "Suspended",
    "Resumed",
    "Stopped",
    "Shutdown",
    "PMSuspended",
    "Crashed",
)
C_DETAILS: dict[EventType, tuple[str, ...]] = {
    EventType.DEFINED: ("Added", "Updated", "Renamed", "Snapshot"),
    EventType.UNDEFINED: ("Removed", "Renamed"),
    EventType.STARTED: ("Booted", "Migrated", "Restored", "Snapshot", "Event wakeup"),
    EventType.SUSPENDED: (
        "Paused",
        "Migrated",
        "I/O Error",
        "Watchdog",
        "Restored",
        "Snapshot",
        "API error",
        "Post-copy",
        "Post-copy Error",
    ),
    EventType.RESUMED: ("Unpaused", "Migrated", "Snapshot", "Post-copy", "Post-copy Error"),
    EventType.STOPPED: (
        "Shutdown",
        "Destroyed",
        "Crashed",
        "Migrated",
        "Saved",
        "Failed",
        "Snapshot",
    ),
    EventType.SHUTDOWN: ("Finished", "Guest request", "Host request"),
    EventType.PMSUSPENDED: ("Memory", "Disk"),
    EventType.CRASHED: ("Panicked", "Crashloaded"),
}
C_GRAPHICS_PHASES = ("connected", "initialized", "disconnected")
C_DISK_CHANGE_REASONS = ("disk empty due to startupPolicy", "disk dropped due to startupPolicy")
C_TRAY_CHANGE_REASONS = ("open", "close")
C_AGENT_STATES = {1: "Connected", 2: "Disconnected"}
C_AGENT_REASONS = ("Unknown", "Domain started", "Channel event")
# Index 0 (VIR_DOMAIN_BLOCK_JOB_TYPE_UNKNOWN) falls through to "unknown" as well.
C_BLOCK_JOB_TYPES = {
    1: "block pull",
    2: "block copy",
    3: "block commit",
    4: "active layer block commit",
    5: "backup",
}
C_BLOCK_JOB_STATUS = ("completed", "failed", "cancelled", "ready")
C_METADATA_TYPES = ("description", "title", "element")

# __func__ of the callback each ID is registered with, and the opaque string the registration
# table passes (the ID's macro name); only the block job callback prints the latter.
C_CALLBACKS: dict[EventID, str] = {
    EventID.REBOOT: "myDomainEventRebootCallback",
    EventID.RTC_CHANGE: "myDomainEventRTCChangeCallback",
    EventID.WATCHDOG: "myDomainEventWatchdogCallback",
    EventID.IO_ERROR: "myDomainEventIOErrorCallback",
    EventID.GRAPHICS: "myDomainEventGraphicsCallback",
    EventID.IO_ERROR_REASON: "myDomainEventIOErrorReasonCallback",
    EventID.CONTROL_ERROR: "myDomainEventControlErrorCallback",
    EventID.BLOCK_JOB: "myDomainEventBlockJobCallback",
    EventID.DISK_CHANGE: "myDomainEventDiskChangeCallback",
    EventID.TRAY_CHANGE: "myDomainEventTrayChangeCallback",
    EventID.PMWAKEUP: "myDomainEventPMWakeupCallback",
    EventID.PMSUSPEND: "myDomainEventPMSuspendCallback",
    EventID.BALLOON_CHANGE: "myDomainEventBalloonChangeCallback",
    EventID.PMSUSPEND_DISK: "myDomainEventPMSuspendDiskCallback",
    EventID.DEVICE_REMOVED: "myDomainEventDeviceRemovedCallback",
    EventID.BLOCK_JOB_2: "myDomainEventBlockJobCallback",
    EventID.TUNABLE: "myDomainEventTunableCallback",
    EventID.AGENT_LIFECYCLE: "myDomainEventAgentLifecycleCallback",
    EventID.DEVICE_ADDED: "myDomainEventDeviceAddedCallback",
    EventID.MIGRATION_ITERATION: "myDomainEventMigrationIterationCallback",
    EventID.JOB_COMPLETED: "myDomainEventJobCompletedCallback",
    EventID.DEVICE_REMOVAL_FAILED: "myDomainEventDeviceRemovalFailedCallback",
    EventID.METADATA_CHANGE: "myDomainEventMetadataChangeCallback",
    EventID.BLOCK_THRESHOLD: "myDomainEventBlockThresholdCallback",
    EventID.MEMORY_FAILURE: "myDomainEventMemoryFailureCallback",
    EventID.MEMORY_DEVICE_SIZE_CHANGE: "myDomainEventMemoryDeviceSizeChangeCallback",
    EventID.NIC_MAC_CHANGE: "myDomainEventNICMACChangeCallback",
    EventID.QEMU_MONITOR: "myDomainEventQemuMonitorCallback",  # virtbridge's own
}
C_OPAQUE = {
    EventID.BLOCK_JOB: "VIR_DOMAIN_EVENT_ID_BLOCK_JOB",
    EventID.BLOCK_JOB_2: "VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2",
}

C_LIFECYCLE = "%s EVENT: Domain %s(%d) %s %s\n"
C_LIFECYCLE_CALLBACKS = ("myDomainEventCallback1", "myDomainEventCallback2")
# Everything after "%s EVENT: Domain %s(%d)", which every callback prints first.
C_FORMATS: dict[EventID, str] = {
    EventID.REBOOT: " rebooted\n",
    EventID.RTC_CHANGE: " rtc change %d\n",
    EventID.WATCHDOG: " watchdog action=%d\n",
    EventID.IO_ERROR: " io error path=%s alias=%s action=%d\n",
    EventID.GRAPHICS: " graphics %s local: family=%d node=%s service=%s "
    "remote: family=%d node=%s service=%s auth: %s %s\n",
    EventID.IO_ERROR_REASON: " io error (reason) path=%s alias=%s action=%d reason=%s\n",
    EventID.CONTROL_ERROR: " control error\n",
    EventID.BLOCK_JOB: " block job callback '%s' disk '%s', type '%s' status '%s'\n",
    EventID.DISK_CHANGE: " disk change oldSrcPath: %s newSrcPath: %s devAlias: %s reason: %s\n",
    EventID.TRAY_CHANGE: " removable disk's tray change devAlias: %s reason: %s\n",
    EventID.PMWAKEUP: " system pmwakeup\n",
    EventID.PMSUSPEND: " system pmsuspend\n",
    EventID.BALLOON_CHANGE: " balloon change %dKB\n",
    EventID.PMSUSPEND_DISK: " system pmsuspend-disk\n",
    EventID.DEVICE_REMOVED: " device removed: %s\n",
    EventID.BLOCK_JOB_2: " block job callback '%s' disk '%s', type '%s' status '%s'\n",
    EventID.TUNABLE: " tunable updated:\n%s",
    EventID.AGENT_LIFECYCLE: " guest agent state changed: %s reason: %s\n",
    EventID.DEVICE_ADDED: " device added: %s\n",
    EventID.MIGRATION_ITERATION: " migration iteration '%d'\n",
    EventID.JOB_COMPLETED: " job completed:\n%s",
    EventID.DEVICE_REMOVAL_FAILED: " device removal failed: %s\n",
    EventID.METADATA_CHANGE: " metadata type: %s (%s)\n",
    EventID.BLOCK_THRESHOLD: " block threshold callback dev '%s'(%s), threshold: '%d', "
    "excess: '%d'\n",
    EventID.MEMORY_FAILURE: " memory failure: recipient '%d', aciont '%d', flags '0x%x'\n",
    EventID.MEMORY_DEVICE_SIZE_CHANGE: " memory device size change: alias: '%s' new size %d'\n",
    EventID.NIC_MAC_CHANGE: " NIC MAC changed: alias: '%s' oldMAC: '%s' newMAC: '%s'\n",
    EventID.QEMU_MONITOR: " %s %s\n",  # virtbridge's own
}
C_GRAPHICS_IDENTITY = " identity: %s=%s"
C_TYPED_PARAM = "\t%s: %s\n"  # %d, %u, %" PRId64 ", %" PRIu64 ", %g or %s by type
C_TYPED_PARAM_UNKNOWN = "\t%s: unknown type\n"
C_NULLSTR = "<null>"  # the example's NULLSTR(); plain printf("%s", NULL) prints C_PRINTF_NULL
C_PRINTF_NULL = "(null)"  # glibc
C_METADATA_NO_NSURI = "n/a"

# --- virsh event (tools/virsh-domain-event.c) ------------------------------------------------

VIRSH_UNKNOWN = "unknown"
VIRSH_UNSUPPORTED = "unsupported value"  # UNKNOWNSTR()
VIRSH_NULLSTR = "<null>"  # NULLSTR()
VIRSH_NAMES: dict[EventID, str] = {
    EventID.LIFECYCLE: "lifecycle",
    EventID.REBOOT: "reboot",
    EventID.RTC_CHANGE: "rtc-change",
    EventID.WATCHDOG: "watchdog",
    EventID.IO_ERROR: "io-error",
    EventID.GRAPHICS: "graphics",
    EventID.IO_ERROR_REASON: "io-error-reason",
    EventID.CONTROL_ERROR: "control-error",
    EventID.BLOCK_JOB: "block-job",
    EventID.DISK_CHANGE: "disk-change",
    EventID.TRAY_CHANGE: "tray-change",
    EventID.PMWAKEUP: "pm-wakeup",
    EventID.PMSUSPEND: "pm-suspend",
    EventID.BALLOON_CHANGE: "balloon-change",
    EventID.PMSUSPEND_DISK: "pm-suspend-disk",
    EventID.DEVICE_REMOVED: "device-removed",
    EventID.BLOCK_JOB_2: "block-job-2",
    EventID.TUNABLE: "tunable",
    EventID.AGENT_LIFECYCLE: "agent-lifecycle",
    EventID.DEVICE_ADDED: "device-added",
    EventID.MIGRATION_ITERATION: "migration-iteration",
    EventID.JOB_COMPLETED: "job-completed",
    EventID.DEVICE_REMOVAL_FAILED: "device-removal-failed",
    EventID.METADATA_CHANGE: "metadata-change",
    EventID.BLOCK_THRESHOLD: "block-threshold",
    EventID.MEMORY_FAILURE: "memory-failure",
    EventID.MEMORY_DEVICE_SIZE_CHANGE: "memory-device-size-change",
    EventID.NIC_MAC_CHANGE: "nic-mac-change",
}
VIRSH_EVENTS = C_EVENTS
VIRSH_DETAILS: dict[EventType, tuple[str, ...]] = {
    **C_DETAILS,
    EventType.SHUTDOWN: ("Finished", "Finished after guest request", "Finished after host request"),
}
VIRSH_WATCHDOG_ACTIONS = ("none", "pause", "reset", "poweroff", "shutdown", "debug", "inject-nmi")
VIRSH_IO_ERROR_ACTIONS = ("none", "pause", "report")
VIRSH_GRAPHICS_PHASES = ("connect", "initialize", "disconnect")
VIRSH_GRAPHICS_FAMILIES = ("IPv4", "IPv6", "unix")
VIRSH_BLOCK_JOB_TYPES = (
    "Unknown job",
    "Block Pull",
    "Block Copy",
    "Block Commit",
    "Active Block Commit",
    "Backup",
)
VIRSH_BLOCK_JOB_UNKNOWN = "Unknown job"
VIRSH_BLOCK_JOB_STATUS = ("completed", "failed", "canceled", "ready")
VIRSH_DISK_CHANGE_REASONS = ("changed", "dropped")
VIRSH_TRAY_CHANGE_REASONS = ("opened", "closed")
VIRSH_AGENT_STATES = ("unknown", "connected", "disconnected")
VIRSH_AGENT_REASONS = ("unknown", "domain started", "channel event")
VIRSH_METADATA_TYPES = ("description", "title", "element")
VIRSH_MEMORY_FAILURE_RECIPIENTS = ("hypervisor", "guest")
VIRSH_MEMORY_FAILURE_ACTIONS = ("ignore", "inject", "fatal", "reset")

VIRSH_HEAD = "event '%s' for domain '%s'"
VIRSH_GENERIC = VIRSH_HEAD + "\n"
VIRSH_LIFECYCLE = "event 'lifecycle' for domain '%s': %s %s\n"
# Everything after VIRSH_HEAD.
VIRSH_FORMATS: dict[EventID, str] = {
    EventID.RTC_CHANGE: ": %d\n",
    EventID.WATCHDOG: ": %s\n",
    EventID.IO_ERROR: ": %s (%s) %s\n",
    EventID.GRAPHICS: ": %s local[%s %s %s] remote[%s %s %s] %s\n%s",
    # Since the strings were split per action for translation, virsh prints the reason
    # variant under the name 'io-error' too.
    EventID.IO_ERROR_REASON: ": %s (%s) %s due to %s\n",
    EventID.BLOCK_JOB: ": %s for %s %s\n",
    EventID.DISK_CHANGE: " disk %s: %s -> %s: %s\n",
    EventID.TRAY_CHANGE: " disk %s: %s\n",
    EventID.BALLOON_CHANGE: ": %dKiB\n",
    EventID.DEVICE_REMOVED: ": %s\n",
    EventID.BLOCK_JOB_2: ": %s for %s %s\n",
    EventID.TUNABLE: ":\n%s",
    EventID.AGENT_LIFECYCLE: ": state: '%s' reason: '%s'\n",
    EventID.DEVICE_ADDED: ": %s\n",
    EventID.MIGRATION_ITERATION: ": iteration: '%d'\n",
    EventID.JOB_COMPLETED: ":\n%s",
    EventID.DEVICE_REMOVAL_FAILED: ": %s\n",
    EventID.METADATA_CHANGE: ": type %s, uri %s\n",
    EventID.BLOCK_THRESHOLD: ": dev: %s(%s) %d %d\n",
    EventID.MEMORY_FAILURE: ":\nrecipient: %s\naction: %s\n"
    "flags:\n\taction required: %d\n\trecursive: %d\n",
    EventID.MEMORY_DEVICE_SIZE_CHANGE: ":\nalias: %s\nsize: %d\n",
    EventID.NIC_MAC_CHANGE: ":\nalias: %s\noldMAC: %s\nnewMAC: %s\n",
}
VIRSH_IO_ERROR_REASON_NAME = "io-error"
VIRSH_GRAPHICS_IDENTITY = "\t%s=%s\n"
VIRSH_TYPED_PARAM = "\t%s: %s\n"
VIRSH_TIMESTAMP = "%4d-%02d-%02d %02d:%02d:%02d.%03d+0000: "  # virTimeStringThenRaw()

# virsh qemu-monitor-event: with --timestamp the "at SECONDS.MICROS" part is replaced.
VIRSH_QEMU_MONITOR = "event %s at %d.%06d for domain '%s': %s\n"
VIRSH_QEMU_MONITOR_TIMESTAMP = "event %s for domain '%s': %s\n"

# --- virtbridge extensions ------------------------------------------------------------------

# Printed in every style in place of the detail word (libvirt has no such details).
EXTENSION_DETAILS: dict[tuple[EventType, int], str] = {
    (EventType.SHUTDOWN, ShutdownDetail.REQUESTED): "Requested",
    (EventType.SHUTDOWN, ShutdownDetail.IGNORED): "Request ignored",
    (EventType.STOPPED, StoppedDetail.VANISHED): "Vanished",
}
