"""Signals: the engine's whole input vocabulary.

A source turns what it sees (a QMP event, a closed monitor, a reaped process, a command
from the control plane, a ``query-status`` reply, a tick of the clock, an event libvirt
already computed) into one of these frozen structs and feeds it to the engine.  Every
signal names its domain and may carry the time it happened, in QMP's format.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import msgspec

from virtbridge.engine.payloads import EventID, Payload
from virtbridge.engine.policy import LifecycleAction, Policy, ShutdownTimeoutAction
from virtbridge.engine.states import DomainState
from virtbridge.engine.time import Timestamp


class Signal(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """Base of all signals."""

    domain: str
    """The domain's name: data, never syntax (it may contain ``/``, ``#``, ``.``, ``>``...)."""
    timestamp: Timestamp | None = None
    uuid: str | None = None
    """The domain's UUID when the source knows it."""


class QmpEvent(Signal, frozen=True, gc=False, kw_only=True):
    """A QMP event as QEMU sent it (``{"event": NAME, "data": {...}, "timestamp": {...}}``)."""

    event: str
    data: dict[str, Any] | None = None


class MonitorEof(Signal, frozen=True, gc=False, kw_only=True):
    """The QMP monitor connection reached end-of-file (QEMU went away or closed it)."""


class ProcessExit(Signal, frozen=True, gc=False, kw_only=True):
    """The emulator process was reaped: ``status`` is its exit code, or ``signal_number`` the
    signal that killed it."""

    status: int | None = None
    signal_number: int | None = None


class MonitorError(Signal, frozen=True, gc=False, kw_only=True):
    """The monitor connection broke (I/O or protocol error); libvirt's CONTROL_ERROR."""

    message: str = ""


class IntentKind(str, Enum):
    """Control-plane intents, spelled as in trace files.

    ``save-failed`` is the second half of ``save``/``managed-save``: the process owner reports
    that the image it was asked to write was not written (libvirt's save API failing), so the
    domain is resumed instead of stopped.
    """

    DEFINE = "define"
    UNDEFINE = "undefine"
    START = "start"
    START_PAUSED = "start-paused"
    SUSPEND = "suspend"
    RESUME = "resume"
    SHUTDOWN = "shutdown"
    REBOOT = "reboot"
    RESET = "reset"
    DESTROY = "destroy"
    SAVE = "save"
    RESTORE = "restore"
    MANAGED_SAVE = "managed-save"
    PM_WAKEUP = "pm-wakeup"
    SAVE_FAILED = "save-failed"


class PolicyOverrides(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """Policy fields a signal sets; ``None`` keeps the domain's current value."""

    on_poweroff: LifecycleAction | None = None
    on_reboot: LifecycleAction | None = None
    on_crash: LifecycleAction | None = None
    shutdown_timeout: float | None = None
    on_shutdown_timeout: ShutdownTimeoutAction | None = None

    def apply(self, policy: Policy) -> Policy:
        changes = {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not None
        }
        return msgspec.structs.replace(policy, **changes) if changes else policy


class Intent(Signal, frozen=True, gc=False, kw_only=True):
    """A control-plane request (virsh's verbs).

    ``paused`` asks ``restore`` to leave the domain paused; ``image_paused`` says the save image
    was taken while paused (libvirt then reports SUSPENDED/RESTORED).  ``policy`` applies to
    ``define``, ``start``, ``start-paused`` and ``restore``.
    """

    intent: IntentKind
    paused: bool = False
    image_paused: bool = False
    policy: PolicyOverrides | None = None


class ObservedStatus(Signal, frozen=True, gc=False, kw_only=True):
    """What QMP ``query-status`` said on (re)connecting to a monitor.

    ``fresh`` tells the engine this is a process it has not seen before (a monitor that
    appeared while the bridge runs), rather than a reconnect to one it already knew: a fresh
    process is announced with libvirt's start events, a reconnect silently resynchronises.
    """

    status: str
    running: bool
    fresh: bool = False


class ProcessLost(Signal, frozen=True, gc=False, kw_only=True):
    """Looking again (a bridge restart, a reconnect), the source found the domain's process
    gone: it ended while nobody was watching.  libvirt's reconnect stops such a domain without
    an event; virtbridge announces it as an extension (STOPPED/VANISHED) unless strict."""


class Timer(Signal, frozen=True, gc=False, kw_only=True):
    """The clock reached a deadline the engine asked for (its ``timestamp`` is "now")."""


class LibvirtEvent(Signal, frozen=True, gc=False, kw_only=True):
    """An event libvirt already computed, passed through unchanged.

    ``id`` is libvirt's domain ID at the time; ``state``/``reason`` are optional and derived
    from the event when absent.  ``resync`` marks an event libvirt never sent: the source
    found, on reconnecting, that this happened while nobody was listening.  Its events are an
    extension (``Event.is_extension``; not under ``strict_libvirt``).
    """

    event_id: EventID
    payload: Payload
    id: int = -1
    state: DomainState | None = None
    reason: int | None = None
    resync: bool = False


SIGNAL_TYPES: tuple[type[Signal], ...] = (
    QmpEvent,
    MonitorEof,
    ProcessExit,
    MonitorError,
    Intent,
    ObservedStatus,
    Timer,
    LibvirtEvent,
    ProcessLost,  # new types go last: stored outboxes know the others by their position
)
