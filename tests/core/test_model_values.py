"""Every enum keeps libvirt's names and numbers (libvirt-lifecycle.md §1), transcribed here
independently of the code so a typo on either side fails."""

from __future__ import annotations

from enum import IntEnum

import pytest

import virtbridge as vb

LIBVIRT = {
    vb.DomainState: "NOSTATE RUNNING BLOCKED PAUSED SHUTDOWN SHUTOFF CRASHED PMSUSPENDED",
    vb.RunningReason: "UNKNOWN BOOTED MIGRATED RESTORED FROM_SNAPSHOT UNPAUSED MIGRATION_CANCELED "
    "SAVE_CANCELED WAKEUP CRASHED POSTCOPY POSTCOPY_FAILED",
    vb.PausedReason: "UNKNOWN USER MIGRATION SAVE DUMP IOERROR WATCHDOG FROM_SNAPSHOT SHUTTING_DOWN "
    "SNAPSHOT CRASHED STARTING_UP POSTCOPY POSTCOPY_FAILED API_ERROR",
    vb.ShutdownReason: "UNKNOWN USER",
    vb.ShutoffReason: "UNKNOWN SHUTDOWN DESTROYED CRASHED MIGRATED SAVED FAILED FROM_SNAPSHOT DAEMON",
    vb.CrashedReason: "UNKNOWN PANICKED",
    vb.NostateReason: "UNKNOWN",
    vb.BlockedReason: "UNKNOWN",
    vb.PMSuspendedReason: "UNKNOWN",
    vb.EventType: "DEFINED UNDEFINED STARTED SUSPENDED RESUMED STOPPED SHUTDOWN PMSUSPENDED CRASHED",
    vb.DefinedDetail: "ADDED UPDATED RENAMED FROM_SNAPSHOT",
    vb.UndefinedDetail: "REMOVED RENAMED",
    vb.StartedDetail: "BOOTED MIGRATED RESTORED FROM_SNAPSHOT WAKEUP RECREATED",
    vb.SuspendedDetail: "PAUSED MIGRATED IOERROR WATCHDOG RESTORED FROM_SNAPSHOT API_ERROR POSTCOPY "
    "POSTCOPY_FAILED GUEST_SHUTDOWN",
    vb.ResumedDetail: "UNPAUSED MIGRATED FROM_SNAPSHOT POSTCOPY POSTCOPY_FAILED",
    vb.StoppedDetail: "SHUTDOWN DESTROYED CRASHED MIGRATED SAVED FAILED FROM_SNAPSHOT RECREATED",
    vb.ShutdownDetail: "FINISHED GUEST HOST",
    vb.PMSuspendedDetail: "MEMORY DISK",
    vb.CrashedDetail: "PANICKED CRASHLOADED",
    vb.EventID: "LIFECYCLE REBOOT RTC_CHANGE WATCHDOG IO_ERROR GRAPHICS IO_ERROR_REASON CONTROL_ERROR "
    "BLOCK_JOB DISK_CHANGE TRAY_CHANGE PMWAKEUP PMSUSPEND BALLOON_CHANGE PMSUSPEND_DISK DEVICE_REMOVED "
    "BLOCK_JOB_2 TUNABLE AGENT_LIFECYCLE DEVICE_ADDED MIGRATION_ITERATION JOB_COMPLETED "
    "DEVICE_REMOVAL_FAILED METADATA_CHANGE BLOCK_THRESHOLD MEMORY_FAILURE MEMORY_DEVICE_SIZE_CHANGE "
    "NIC_MAC_CHANGE",
    vb.WatchdogAction: "NONE PAUSE RESET POWEROFF SHUTDOWN DEBUG INJECTNMI",
    vb.IoErrorAction: "NONE PAUSE REPORT",
    vb.GraphicsPhase: "CONNECT INITIALIZE DISCONNECT",
    vb.GraphicsAddressFamily: "IPV4 IPV6 UNIX",
    vb.BlockJobType: "UNKNOWN PULL COPY COMMIT ACTIVE_COMMIT BACKUP",
    vb.BlockJobStatus: "COMPLETED FAILED CANCELED READY",
    vb.DiskChangeReason: "MISSING_ON_START DROP_MISSING_ON_START",
    vb.TrayChangeReason: "OPEN CLOSE",
    vb.AgentReason: "UNKNOWN DOMAIN_STARTED CHANNEL",
    vb.MetadataType: "DESCRIPTION TITLE ELEMENT",
    vb.MemoryFailureRecipient: "HYPERVISOR GUEST",
    vb.MemoryFailureAction: "IGNORE INJECT FATAL RESET",
}
"""Names in value order starting at 0; anything else in the enum must be an extension (>= 100)."""


@pytest.mark.parametrize("enum", list(LIBVIRT), ids=lambda e: e.__name__)
def test_libvirt_values(enum: type[IntEnum]) -> None:
    names = LIBVIRT[enum].split()
    for value, name in enumerate(names):
        assert enum[name] == value, f"{enum.__name__}.{name}"
    extras = [m for m in enum if m.name not in names]
    assert all(m.value >= 100 for m in extras), extras


def test_agent_state_and_memory_failure_flags() -> None:
    assert (vb.AgentState.CONNECTED, vb.AgentState.DISCONNECTED) == (1, 2)
    assert (vb.MemoryFailureFlags.ACTION_REQUIRED, vb.MemoryFailureFlags.RECURSIVE) == (1, 2)


def test_extensions_are_exactly_the_documented_ones() -> None:
    assert vb.ShutdownDetail.REQUESTED == 100 and vb.ShutdownDetail.IGNORED == 101
    assert vb.RunningReason.SHUTDOWN_REQUESTED == 100


def test_lifecycle_action_codes_are_libvirts() -> None:
    codes = {action.value: action.code for action in vb.LifecycleAction}
    assert codes == {
        "destroy": 0,
        "restart": 1,
        "rename-restart": 2,
        "preserve": 3,
        "coredump-destroy": 4,
        "coredump-restart": 5,
    }


def test_every_event_id_has_a_payload_type_and_kind() -> None:
    from virtbridge.engine.payloads import PAYLOAD_TYPES

    assert set(PAYLOAD_TYPES) == set(vb.EventID)
    kinds = [member.kind for member in vb.EventID]
    assert len(set(kinds)) == len(kinds)
    assert (
        vb.EventID.IO_ERROR.kind == "io-error"
        and vb.EventID.PMSUSPEND_DISK.kind == "pm-suspend-disk"
    )


def test_timestamp() -> None:
    stamp = vb.Timestamp(1764100633, 983000)
    assert stamp.isoformat() == "2025-11-25T19:57:13.983000Z"
    assert vb.Timestamp.from_float(stamp.as_float()) == stamp
