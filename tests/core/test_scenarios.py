"""One table row per scenario of libvirt-lifecycle.md §4 and qemu-guests.md §7.

Each row feeds what real QEMU 7.2 sends (including the STOP after SHUTDOWN, QEMU's second
SHUTDOWN after SIGTERM, and SeaBIOS' extra RESETs) and asserts the ordered events with
their numeric codes and the final (state, reason), as real libvirt 9.0 produced them.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tests.core.scenario import (
    GUEST_POWEROFF,
    GUEST_RESET,
    HOST_RESET,
    HOST_SIGNAL,
    Run,
)
from virtbridge import Engine

START = ["start", "RESUME"]
DEFINED_START = ["define", "start", "RESUME"]
QUIT = 'SHUTDOWN {"guest": false, "reason": "host-qmp-quit"}'
PANIC = 'GUEST_PANICKED {"action": "pause"}'

RESUMED_UNPAUSED = "RESUMED/UNPAUSED [4/0]"
STARTED_BOOTED = "STARTED/BOOTED [2/0]"
SUSPENDED_PAUSED = "SUSPENDED/PAUSED [3/0]"
SHUTDOWN_GUEST = "SHUTDOWN/GUEST [6/1]"
SHUTDOWN_HOST = "SHUTDOWN/HOST [6/2]"
STOPPED_SHUTDOWN = "STOPPED/SHUTDOWN [5/0]"
STOPPED_DESTROYED = "STOPPED/DESTROYED [5/1]"
RUNNING_BOOTED = "RUNNING/BOOTED [1/1]"


class Row(NamedTuple):
    name: str
    given: list[str]
    steps: list[str]
    events: list[str]
    state: str
    strict: bool = False


ROWS = [
    # -- libvirt-lifecycle.md §4 ------------------------------------------------------------
    Row("1 define", [], ["define"], ["DEFINED/ADDED [0/0]"], "SHUTOFF/UNKNOWN [5/0]"),
    Row("2 start", ["define"], START, [RESUMED_UNPAUSED, STARTED_BOOTED], RUNNING_BOOTED),
    Row("2 create transient", [], START, [RESUMED_UNPAUSED, STARTED_BOOTED], RUNNING_BOOTED),
    Row(
        "2b start paused",
        ["define"],
        ["start-paused"],
        [STARTED_BOOTED, SUSPENDED_PAUSED],
        "PAUSED/USER [3/1]",
    ),
    Row("3 suspend", START, ["suspend", "STOP"], [SUSPENDED_PAUSED], "PAUSED/USER [3/1]"),
    Row("3 suspend again", [*START, "suspend", "STOP"], ["suspend"], [], "PAUSED/USER [3/1]"),
    Row(
        "4 resume",
        [*START, "suspend", "STOP"],
        ["resume", "RESUME"],
        [RESUMED_UNPAUSED],
        "RUNNING/UNPAUSED [1/5]",
    ),
    Row(
        "5 guest powers off",
        DEFINED_START,
        [GUEST_POWEROFF, "STOP", HOST_SIGNAL, "eof", 'exit {"status": 0}'],
        [SHUTDOWN_GUEST, STOPPED_SHUTDOWN],
        "SHUTOFF/SHUTDOWN [5/1]",
    ),
    Row(
        "5 transient guest powers off",
        START,
        [GUEST_POWEROFF, "STOP", HOST_SIGNAL, "eof"],
        [SHUTDOWN_GUEST, STOPPED_SHUTDOWN],
        "gone",
    ),
    Row(
        "6 shutdown, guest complies (strict)",
        DEFINED_START,
        ["shutdown", "POWERDOWN", GUEST_POWEROFF, "STOP", HOST_SIGNAL, "eof"],
        ["QEMU_MONITOR", SHUTDOWN_GUEST, STOPPED_SHUTDOWN],
        "SHUTOFF/SHUTDOWN [5/1]",
        strict=True,
    ),
    Row(
        "6 shutdown, guest complies (extension)",
        DEFINED_START,
        ["shutdown", "POWERDOWN", GUEST_POWEROFF, "STOP", HOST_SIGNAL, "eof", "timer"],
        ["SHUTDOWN/REQUESTED [6/100]", "QEMU_MONITOR", SHUTDOWN_GUEST, STOPPED_SHUTDOWN],
        "SHUTOFF/SHUTDOWN [5/1]",
    ),
    Row(
        "6b QEMU < 2.10 sends no guest field",
        DEFINED_START,
        ["SHUTDOWN", "STOP", "SHUTDOWN", "eof"],
        ["SHUTDOWN/FINISHED [6/0]", STOPPED_SHUTDOWN],
        "SHUTOFF/SHUTDOWN [5/1]",
    ),
    Row(
        "6c guest powers off, on_poweroff=restart (fake reboot)",
        ['start {"on_poweroff": "restart"}', "RESUME"],
        [GUEST_POWEROFF, "STOP", HOST_RESET, "RESUME", GUEST_RESET],
        ["REBOOT", "REBOOT"],
        RUNNING_BOOTED,
    ),
    Row(
        "7 destroy",
        DEFINED_START,
        ["destroy", HOST_SIGNAL, "eof", 'exit {"status": 0}'],
        [SHUTDOWN_HOST, STOPPED_DESTROYED],
        "SHUTOFF/DESTROYED [5/2]",
    ),
    Row(
        "8 QEMU killed with SIGKILL",
        DEFINED_START,
        ["eof", 'exit {"signal_number": 9}'],
        ["STOPPED/FAILED [5/5]"],
        "SHUTOFF/CRASHED [5/3]",
    ),
    Row(
        "8b QEMU killed with SIGTERM from outside",
        DEFINED_START,
        [HOST_SIGNAL, "eof", 'exit {"status": 0}'],
        [SHUTDOWN_HOST, STOPPED_SHUTDOWN],
        "SHUTOFF/SHUTDOWN [5/1]",
    ),
    Row(
        "9 panic, on_crash=destroy",
        DEFINED_START,
        [PANIC, "STOP", HOST_SIGNAL, "eof"],
        ["CRASHED/PANICKED [8/0]", "STOPPED/CRASHED [5/2]"],
        "SHUTOFF/CRASHED [5/3]",
    ),
    Row(
        "9 panic, on_crash=coredump-destroy",
        ['define {"on_crash": "coredump-destroy"}', "start", "RESUME"],
        [PANIC, "STOP", HOST_SIGNAL, "eof"],
        ["CRASHED/PANICKED [8/0]", "STOPPED/CRASHED [5/2]"],
        "SHUTOFF/CRASHED [5/3]",
    ),
    Row(
        "9b panic, on_crash=preserve",
        ['define {"on_crash": "preserve"}', "start", "RESUME"],
        [PANIC, "STOP"],
        ["CRASHED/PANICKED [8/0]"],
        "CRASHED/PANICKED [6/1]",
    ),
    Row(
        "9b preserved crash, then resume",
        ['define {"on_crash": "preserve"}', "start", "RESUME", PANIC, "STOP"],
        ["resume", "RESUME"],
        [RESUMED_UNPAUSED],
        "RUNNING/UNPAUSED [1/5]",
    ),
    Row(
        "9b preserved crash, then destroy",
        ['define {"on_crash": "preserve"}', "start", "RESUME", PANIC, "STOP"],
        ["destroy", HOST_SIGNAL, "eof"],
        [SHUTDOWN_HOST, STOPPED_DESTROYED],
        "SHUTOFF/DESTROYED [5/2]",
    ),
    Row(
        "9c panic, on_crash=restart",
        ['define {"on_crash": "restart"}', "start", "RESUME"],
        [PANIC, "STOP", HOST_RESET, "RESUME", GUEST_RESET, GUEST_RESET],
        [
            SUSPENDED_PAUSED,
            "CRASHED/PANICKED [8/0]",
            "REBOOT",
            RESUMED_UNPAUSED,
            "REBOOT",
            "REBOOT",
        ],
        "RUNNING/CRASHED [1/9]",
    ),
    Row(
        "9c panic, on_crash=coredump-restart",
        ['define {"on_crash": "coredump-restart"}', "start", "RESUME"],
        [PANIC, "STOP", HOST_RESET, "RESUME", GUEST_RESET],
        [SUSPENDED_PAUSED, "CRASHED/PANICKED [8/0]", "REBOOT", RESUMED_UNPAUSED, "REBOOT"],
        "RUNNING/CRASHED [1/9]",
    ),
    Row(
        "10 reset",
        DEFINED_START,
        ["reset", HOST_RESET, GUEST_RESET, GUEST_RESET],
        ["REBOOT", "REBOOT", "REBOOT"],
        RUNNING_BOOTED,
    ),
    Row(
        "10 guest reboots",
        DEFINED_START,
        [GUEST_RESET, GUEST_RESET],
        ["REBOOT", "REBOOT"],
        RUNNING_BOOTED,
    ),
    Row(
        "10 reboot request on an ACPI guest (fake reboot)",
        DEFINED_START,
        ["reboot", "POWERDOWN", GUEST_POWEROFF, "STOP", HOST_RESET, "RESUME", GUEST_RESET],
        ["QEMU_MONITOR", "REBOOT", "REBOOT"],
        RUNNING_BOOTED,
    ),
    Row(
        "10b guest reboots, on_reboot=destroy (QEMU turns it into a shutdown)",
        ['define {"on_reboot": "destroy"}', "start", "RESUME"],
        ['SHUTDOWN {"guest": true, "reason": "guest-reset"}', "STOP", HOST_SIGNAL, "eof"],
        [SHUTDOWN_GUEST, STOPPED_SHUTDOWN],
        "SHUTOFF/SHUTDOWN [5/1]",
    ),
    Row(
        "11 save",
        DEFINED_START,
        ["save", "STOP", QUIT, "eof"],
        [SUSPENDED_PAUSED, "STOPPED/SAVED [5/4]"],
        "SHUTOFF/SAVED [5/5]",
    ),
    Row(
        "11 save, transient",
        START,
        ["save", "STOP", QUIT, "eof"],
        [SUSPENDED_PAUSED, "STOPPED/SAVED [5/4]"],
        "gone",
    ),
    Row(
        "12 restore",
        [*DEFINED_START, "save", "STOP", QUIT, "eof"],
        ["restore", "RESUME"],
        ["STARTED/RESTORED [2/2]", "RESUMED/FROM_SNAPSHOT [4/2]"],
        "RUNNING/RESTORED [1/3]",
    ),
    Row(
        "12b restore --paused",
        [*DEFINED_START, "save", "STOP", QUIT, "eof"],
        ['restore {"paused": true}'],
        ["STARTED/RESTORED [2/2]", SUSPENDED_PAUSED],
        "PAUSED/MIGRATION [3/2]",
    ),
    Row(
        "12b restore of an image saved paused",
        [*DEFINED_START, "suspend", "STOP", "save", QUIT, "eof"],
        ['restore {"image_paused": true, "paused": true}'],
        ["STARTED/RESTORED [2/2]", "SUSPENDED/RESTORED [3/4]"],
        "PAUSED/MIGRATION [3/2]",
    ),
    Row(
        "12c managed save, then start",
        DEFINED_START,
        ["managed-save", "STOP", QUIT, "eof", "start", "RESUME"],
        [
            SUSPENDED_PAUSED,
            "STOPPED/SAVED [5/4]",
            "STARTED/RESTORED [2/2]",
            "RESUMED/FROM_SNAPSHOT [4/2]",
        ],
        "RUNNING/RESTORED [1/3]",
    ),
    Row("13 undefine inactive", ["define"], ["undefine"], ["UNDEFINED/REMOVED [1/0]"], "gone"),
    Row(
        "13b undefine running, later destroy",
        DEFINED_START,
        ["undefine", "destroy", HOST_SIGNAL, "eof"],
        ["UNDEFINED/REMOVED [1/0]", SHUTDOWN_HOST, STOPPED_DESTROYED],
        "gone",
    ),
    Row("13c redefine", ["define"], ["define"], ["DEFINED/UPDATED [0/1]"], "SHUTOFF/UNKNOWN [5/0]"),
    Row(
        "13d define a running transient", START, ["define"], ["DEFINED/ADDED [0/0]"], RUNNING_BOOTED
    ),
    Row(
        "14 guest S3",
        DEFINED_START,
        ["SUSPEND"],
        ["PMSUSPEND", "PMSUSPENDED/MEMORY [7/0]"],
        "PMSUSPENDED/UNKNOWN [7/0]",
    ),
    Row(
        "14 wakeup (SeaBIOS reboots after S3)",
        [*DEFINED_START, "SUSPEND"],
        ["pm-wakeup", "WAKEUP", GUEST_RESET],
        ["PMWAKEUP", "STARTED/WAKEUP [2/4]", "REBOOT"],
        "RUNNING/WAKEUP [1/8]",
    ),
    Row(
        "15 disk I/O error, error_policy=stop",
        DEFINED_START,
        [
            'BLOCK_IO_ERROR {"device": "drive-virtio-disk0", "node-name": "#block1", '
            '"operation": "write", "action": "stop", "nospace": true, "reason": "No space"}',
            "STOP",
        ],
        ["IO_ERROR", "IO_ERROR_REASON", "SUSPENDED/IOERROR [3/2]"],
        "PAUSED/IOERROR [3/5]",
    ),
    Row(
        "16 watchdog, action=pause",
        DEFINED_START,
        ['WATCHDOG {"action": "pause"}', "STOP"],
        ["WATCHDOG", "SUSPENDED/WATCHDOG [3/3]"],
        "PAUSED/WATCHDOG [3/6]",
    ),
    # -- qemu-guests.md §7 rows not covered above -------------------------------------------
    Row(
        "7 redefine same uuid",
        ['define {"uuid": "u1"}'],
        ['define {"uuid": "u1"}'],
        ["DEFINED/UPDATED [0/1]"],
        "SHUTOFF/UNKNOWN [5/0]",
    ),
    Row(
        "7 shutdown on an idle guest (strict)",
        DEFINED_START,
        ["shutdown", "POWERDOWN"],
        ["QEMU_MONITOR"],
        RUNNING_BOOTED,
        strict=True,
    ),
    Row(
        "7 reboot on an idle guest",
        DEFINED_START,
        ["reboot", "POWERDOWN"],
        ["QEMU_MONITOR"],
        RUNNING_BOOTED,
    ),
    Row(
        "7 guest power-off, on_poweroff=destroy, from define",
        ["define"],
        [*START, GUEST_POWEROFF, "STOP", HOST_SIGNAL, "eof"],
        [RESUMED_UNPAUSED, STARTED_BOOTED, SHUTDOWN_GUEST, STOPPED_SHUTDOWN],
        "SHUTOFF/SHUTDOWN [5/1]",
    ),
    Row(
        "7 on_poweroff=restart, later destroy shows no SHUTDOWN/HOST",
        [
            'define {"on_poweroff": "restart"}',
            *START,
            GUEST_POWEROFF,
            "STOP",
            HOST_RESET,
            "RESUME",
            GUEST_RESET,
        ],
        ["destroy", HOST_SIGNAL, "eof"],
        [STOPPED_DESTROYED],
        "SHUTOFF/DESTROYED [5/2]",
    ),
    Row(
        "7 destroy a paused domain",
        [*DEFINED_START, "suspend", "STOP"],
        ["destroy", HOST_SIGNAL, "eof"],
        [SHUTDOWN_HOST, STOPPED_DESTROYED],
        "SHUTOFF/DESTROYED [5/2]",
    ),
    Row(
        "7 pvpanic crash-loaded",
        DEFINED_START,
        ['GUEST_CRASHLOADED {"action": "run"}'],
        ["CRASHED/CRASHLOADED [8/1]"],
        RUNNING_BOOTED,
    ),
    Row(
        "7 destroy transient",
        START,
        ["destroy", HOST_SIGNAL, "eof"],
        [SHUTDOWN_HOST, STOPPED_DESTROYED],
        "gone",
    ),
    Row(
        "7 libvirtd restarted: reconnect, no events",
        [],
        ['status {"status": {"status": "running", "running": true}}'],
        [],
        RUNNING_BOOTED,
    ),
    Row(
        "reconnect to a paused domain",
        [],
        ['status {"status": {"status": "paused", "running": false}}'],
        [],
        "PAUSED/USER [3/1]",
    ),
    Row(
        "reconnect to a domain that finished shutting down",
        DEFINED_START,
        ['status {"status": {"status": "shutdown", "running": false}}'],
        [],
        "SHUTDOWN/UNKNOWN [4/0]",
    ),
    Row(
        "reconnect to a panicked domain",
        DEFINED_START,
        ['status {"status": {"status": "guest-panicked", "running": false}}'],
        [],
        "CRASHED/PANICKED [6/1]",
    ),
    Row(
        "reconnect: paused domain found running",
        [*DEFINED_START, "suspend", "STOP"],
        ['status {"status": {"status": "running", "running": true}}'],
        [],
        "RUNNING/UNPAUSED [1/5]",
    ),
    # -- extensions ----------------------------------------------------------------------------
    Row(
        "shutdown request ignored, then times out",
        ['define {"shutdown_timeout": 1}', *START],
        ["shutdown", "POWERDOWN", "timer"],
        ["SHUTDOWN/REQUESTED [6/100]", "QEMU_MONITOR", "SHUTDOWN/IGNORED [6/101]"],
        RUNNING_BOOTED,
    ),
    Row(
        "shutdown request times out and escalates to destroy",
        ['define {"shutdown_timeout": 1, "on_shutdown_timeout": "destroy"}', *START],
        ["shutdown", "POWERDOWN", "timer", HOST_SIGNAL, "eof"],
        [
            "SHUTDOWN/REQUESTED [6/100]",
            "QEMU_MONITOR",
            "SHUTDOWN/IGNORED [6/101]",
            SHUTDOWN_HOST,
            STOPPED_DESTROYED,
        ],
        "SHUTOFF/DESTROYED [5/2]",
    ),
    Row(
        "escalation in strict mode: no extension events, still destroyed",
        ['define {"shutdown_timeout": 1, "on_shutdown_timeout": "destroy"}', *START],
        ["shutdown", "POWERDOWN", "timer", HOST_SIGNAL, "eof"],
        ["QEMU_MONITOR", SHUTDOWN_HOST, STOPPED_DESTROYED],
        "SHUTOFF/DESTROYED [5/2]",
        strict=True,
    ),
    Row(
        "POWERDOWN from another client is a shutdown request",
        DEFINED_START,
        ["POWERDOWN"],
        ["QEMU_MONITOR", "SHUTDOWN/REQUESTED [6/100]"],
        "RUNNING/SHUTDOWN_REQUESTED [1/100]",
    ),
    Row(
        "POWERDOWN in strict mode is only a monitor event",
        DEFINED_START,
        ["POWERDOWN"],
        ["QEMU_MONITOR"],
        RUNNING_BOOTED,
        strict=True,
    ),
    Row(
        "fresh process found running (attach mode)",
        [],
        ['status {"status": {"status": "running", "running": true}, "fresh": true}'],
        [RESUMED_UNPAUSED, STARTED_BOOTED],
        RUNNING_BOOTED,
    ),
    Row(
        "fresh process found in prelaunch, then cont",
        [],
        ['status {"status": {"status": "prelaunch", "running": false}, "fresh": true}', "RESUME"],
        [RESUMED_UNPAUSED, STARTED_BOOTED],
        RUNNING_BOOTED,
    ),
    Row(
        "fresh process found paused",
        [],
        ['status {"status": {"status": "paused", "running": false}, "fresh": true}'],
        [STARTED_BOOTED, SUSPENDED_PAUSED],
        "PAUSED/USER [3/1]",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_scenario(row: Row) -> None:
    run = Run(Engine(strict_libvirt=row.strict))
    run.feed(row.given)
    assert run.described(row.steps) == row.events
    assert run.state == row.state
    assert all(outcome.error is None for outcome in run.outcomes)
