"""Actions: what the engine asks the owner of an emulator process to do.

The engine never touches a process.  When libvirt's qemu driver would kill QEMU, send it a
monitor command or dump its memory, the engine returns the matching action and the source
that owns the process carries it out (an attach-only source, which owns nothing, ignores the
ones it cannot perform).  Actions are returned in the order they must be performed.
"""

from __future__ import annotations

from typing import Any

import msgspec

from virtbridge.engine.time import Timestamp

KILL_GRACE = 10.0
"""Seconds between SIGTERM and SIGKILL, as libvirt's forced kill waits."""


class Action(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """Base of all actions; ``domain`` is the domain's name."""

    domain: str


class Kill(Action, frozen=True, gc=False, kw_only=True):
    """Terminate the emulator: SIGTERM now, SIGKILL if it is still alive after ``grace``
    seconds (``grace = 0`` means SIGKILL at once).  Never signal a process you did not start."""

    grace: float = KILL_GRACE


class MonitorCommand(Action, frozen=True, gc=False, kw_only=True):
    """Send a QMP command (``cont``, ``stop``, ``system_reset``, ``system_powerdown``, ...)."""

    command: str
    arguments: dict[str, Any] | None = None


class PowerButton(MonitorCommand, frozen=True, gc=False, kw_only=True):
    """``system_powerdown``: press the ACPI power button.  ``reboot`` says why: ``ctl reboot``
    (libvirt's fake reboot: the guest's power-off becomes a reset), so a source that goes
    through an API of its own (libvirt's virDomainReboot) can ask for the right thing."""

    command: str = "system_powerdown"
    reboot: bool = False


class CoreDump(Action, frozen=True, gc=False, kw_only=True):
    """Dump the guest's memory (on_crash = coredump-*) before the next action."""


class SaveState(Action, frozen=True, gc=False, kw_only=True):
    """Write the (paused) domain's state to its save image, then end the process."""

    managed: bool = False


class Resync(Action, frozen=True, gc=False, kw_only=True):
    """Ask the monitor for ``query-status`` and feed the answer back as an ObservedStatus."""


class ScheduleTimer(Action, frozen=True, gc=False, kw_only=True):
    """Feed a Timer signal for this domain ``delay`` seconds from now (the deadline ``at``,
    when the signal had a timestamp), stamped with the time it fires."""

    delay: float
    at: Timestamp | None = None


def cont(domain: str) -> MonitorCommand:
    return MonitorCommand(domain=domain, command="cont")


def stop(domain: str) -> MonitorCommand:
    return MonitorCommand(domain=domain, command="stop")


def system_reset(domain: str) -> MonitorCommand:
    return MonitorCommand(domain=domain, command="system_reset")


def system_powerdown(domain: str, *, reboot: bool = False) -> PowerButton:
    return PowerButton(domain=domain, reboot=reboot)


def system_wakeup(domain: str) -> MonitorCommand:
    return MonitorCommand(domain=domain, command="system_wakeup")


def set_action(domain: str, **actions: str) -> MonitorCommand:
    """QMP ``set-action``: what QEMU does on a guest reboot, shutdown, panic or watchdog."""
    return MonitorCommand(domain=domain, command="set-action", arguments=actions)
