"""libvirt's callback arguments as virtbridge payloads, and the state each event allows.

libvirt-python calls a domain event callback as ``cb(conn, dom, *arguments, opaque)``; the
arguments differ per event ID (``libvirt-lifecycle.md`` §1.5).  :data:`CONVERTERS` turns them
into the model's payload, keeping libvirt's numbers: enum-valued fields become the model's
enum members, and a number the model does not know (a newer libvirt) is refused as a whole
rather than renamed, so nothing is ever published with a wrong meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from typing import Any, TypeVar

import virtbridge
from virtbridge import (
    AgentReason,
    AgentState,
    BlockJobStatus,
    BlockJobType,
    DiskChangeReason,
    DomainState,
    EventID,
    EventType,
    GraphicsAddressFamily,
    GraphicsPhase,
    IoErrorAction,
    MemoryFailureAction,
    MemoryFailureRecipient,
    MetadataType,
    TrayChangeReason,
    WatchdogAction,
)

E = TypeVar("E", bound=IntEnum)


class Unrepresentable(ValueError):
    """An event whose arguments the model cannot hold (an unknown code)."""


def _member(kind: type[E], value: Any) -> E:
    try:
        return kind(value)
    except (ValueError, TypeError):
        raise Unrepresentable(f"{kind.__name__} {value!r} is unknown here") from None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


_DETAILS: Mapping[EventType, type[IntEnum]] = {
    EventType.DEFINED: virtbridge.DefinedDetail,
    EventType.UNDEFINED: virtbridge.UndefinedDetail,
    EventType.STARTED: virtbridge.StartedDetail,
    EventType.SUSPENDED: virtbridge.SuspendedDetail,
    EventType.RESUMED: virtbridge.ResumedDetail,
    EventType.STOPPED: virtbridge.StoppedDetail,
    EventType.SHUTDOWN: virtbridge.ShutdownDetail,
    EventType.PMSUSPENDED: virtbridge.PMSuspendedDetail,
    EventType.CRASHED: virtbridge.CrashedDetail,
}

REASONS: Mapping[DomainState, type[IntEnum]] = {
    DomainState.NOSTATE: virtbridge.NostateReason,
    DomainState.RUNNING: virtbridge.RunningReason,
    DomainState.BLOCKED: virtbridge.BlockedReason,
    DomainState.PAUSED: virtbridge.PausedReason,
    DomainState.SHUTDOWN: virtbridge.ShutdownReason,
    DomainState.SHUTOFF: virtbridge.ShutoffReason,
    DomainState.CRASHED: virtbridge.CrashedReason,
    DomainState.PMSUSPENDED: virtbridge.PMSuspendedReason,
}
"""The reason enum of each state (``virDomainGetState``'s second value)."""


def lifecycle(event: Any, detail: Any) -> virtbridge.Lifecycle:
    kind = _member(EventType, event)
    code = _member(_DETAILS[kind], detail)
    if code >= 100:  # virtbridge's own extension numbers never come from libvirt
        raise Unrepresentable(f"detail {detail!r} of {kind.name}")
    return virtbridge.Lifecycle(kind, int(code))


def _address(raw: Any) -> virtbridge.GraphicsAddress:
    raw = raw if isinstance(raw, Mapping) else {}
    return virtbridge.GraphicsAddress(
        _member(GraphicsAddressFamily, int(raw.get("family", 0))),
        _text(raw.get("node")),
        _text(raw.get("service")),
    )


def _subject(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Sequence):
        return ()
    return tuple((_text(pair[0]), _text(pair[1])) for pair in raw if len(pair) >= 2)


def _params(raw: Any) -> virtbridge.TypedParams:
    return virtbridge.TypedParams(dict(raw) if isinstance(raw, Mapping) else {})


Converter = Callable[..., virtbridge.Payload]

CONVERTERS: Mapping[EventID, Converter] = {
    EventID.LIFECYCLE: lifecycle,
    EventID.REBOOT: virtbridge.Empty,
    EventID.RTC_CHANGE: lambda offset: virtbridge.RtcChange(int(offset)),
    EventID.WATCHDOG: lambda action: virtbridge.Watchdog(_member(WatchdogAction, action)),
    EventID.IO_ERROR: lambda src, alias, action: virtbridge.IoError(
        _text(src), _text(alias), _member(IoErrorAction, action)
    ),
    EventID.GRAPHICS: lambda phase, local, remote, scheme, subject: virtbridge.Graphics(
        _member(GraphicsPhase, phase),
        _address(local),
        _address(remote),
        _text(scheme),
        _subject(subject),
    ),
    EventID.IO_ERROR_REASON: lambda src, alias, action, reason: virtbridge.IoErrorReason(
        _text(src), _text(alias), _member(IoErrorAction, action), _text(reason)
    ),
    EventID.CONTROL_ERROR: virtbridge.Empty,
    EventID.BLOCK_JOB: lambda disk, kind, status: virtbridge.BlockJob(
        _text(disk), _member(BlockJobType, kind), _member(BlockJobStatus, status)
    ),
    EventID.DISK_CHANGE: lambda old, new, alias, reason: virtbridge.DiskChange(
        _optional(old), _optional(new), _text(alias), _member(DiskChangeReason, reason)
    ),
    EventID.TRAY_CHANGE: lambda alias, reason: virtbridge.TrayChange(
        _text(alias), _member(TrayChangeReason, reason)
    ),
    EventID.PMWAKEUP: lambda reason: virtbridge.PMReason(int(reason)),
    EventID.PMSUSPEND: lambda reason: virtbridge.PMReason(int(reason)),
    EventID.BALLOON_CHANGE: lambda actual: virtbridge.BalloonChange(int(actual)),
    EventID.PMSUSPEND_DISK: lambda reason: virtbridge.PMReason(int(reason)),
    EventID.DEVICE_REMOVED: lambda alias: virtbridge.Device(_text(alias)),
    EventID.BLOCK_JOB_2: lambda disk, kind, status: virtbridge.BlockJob(
        _text(disk), _member(BlockJobType, kind), _member(BlockJobStatus, status)
    ),
    EventID.TUNABLE: _params,
    EventID.AGENT_LIFECYCLE: lambda state, reason: virtbridge.AgentLifecycle(
        _member(AgentState, state), _member(AgentReason, reason)
    ),
    EventID.DEVICE_ADDED: lambda alias: virtbridge.Device(_text(alias)),
    EventID.MIGRATION_ITERATION: lambda iteration: virtbridge.MigrationIteration(int(iteration)),
    EventID.JOB_COMPLETED: _params,
    EventID.DEVICE_REMOVAL_FAILED: lambda alias: virtbridge.Device(_text(alias)),
    EventID.METADATA_CHANGE: lambda kind, nsuri: virtbridge.MetadataChange(
        _member(MetadataType, kind), _optional(nsuri)
    ),
    EventID.BLOCK_THRESHOLD: lambda dev, path, threshold, excess: virtbridge.BlockThreshold(
        _text(dev), _optional(path), int(threshold), int(excess)
    ),
    EventID.MEMORY_FAILURE: lambda recipient, action, flags: virtbridge.MemoryFailure(
        _member(MemoryFailureRecipient, recipient),
        _member(MemoryFailureAction, action),
        int(flags),
    ),
    EventID.MEMORY_DEVICE_SIZE_CHANGE: lambda alias, size: virtbridge.MemoryDeviceSizeChange(
        _text(alias), int(size)
    ),
    EventID.NIC_MAC_CHANGE: lambda alias, old, new: virtbridge.NicMacChange(
        _text(alias), _text(old), _text(new)
    ),
}
"""Event ID → the function that builds its payload from the callback's arguments."""


def payload(event_id: EventID, arguments: Sequence[Any]) -> virtbridge.Payload:
    """The payload of one callback; :class:`Unrepresentable` when its codes are unknown."""
    try:
        return CONVERTERS[event_id](*arguments)
    except Unrepresentable:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise Unrepresentable(f"{event_id.name} arguments {arguments!r}: {exc}") from None


# -- which (state, reason) libvirt may report right after an event ----------------------------

_ACTIVE = frozenset(
    {
        DomainState.RUNNING,
        DomainState.BLOCKED,
        DomainState.PAUSED,
        DomainState.SHUTDOWN,
        DomainState.CRASHED,
        DomainState.PMSUSPENDED,
    }
)

_AFTER_LIFECYCLE: Mapping[EventType, frozenset[DomainState]] = {
    EventType.STARTED: frozenset({DomainState.RUNNING, DomainState.PAUSED}),
    EventType.SUSPENDED: frozenset({DomainState.PAUSED}),
    EventType.RESUMED: frozenset({DomainState.RUNNING}),
    EventType.STOPPED: frozenset({DomainState.SHUTOFF}),
    EventType.SHUTDOWN: frozenset({DomainState.SHUTDOWN}),
    EventType.PMSUSPENDED: frozenset({DomainState.PMSUSPENDED}),
    EventType.CRASHED: frozenset({DomainState.CRASHED}),
}

_AFTER_OTHER: Mapping[EventID, frozenset[DomainState]] = {
    # libvirt changes the state before it queues these, so its state is theirs too.
    EventID.PMSUSPEND: frozenset({DomainState.PMSUSPENDED}),
    EventID.PMSUSPEND_DISK: frozenset({DomainState.PMSUSPENDED}),
    EventID.PMWAKEUP: frozenset({DomainState.RUNNING}),
}


def states_after(event_id: EventID, body: virtbridge.Payload) -> frozenset[DomainState]:
    """The states libvirt can be in right after this event (empty: the event says nothing
    about the state, so the domain's state stays as the previous event left it).

    DEFINED and UNDEFINED are in this group: they change whether a domain is persistent, not
    its state, and the engine keeps its persistence bookkeeping only for events whose state
    it derives itself.
    """
    if isinstance(body, virtbridge.Lifecycle):
        if body.event == EventType.CRASHED and body.detail == virtbridge.CrashedDetail.CRASHLOADED:
            return _ACTIVE  # the guest loaded a crash kernel and keeps running
        return _AFTER_LIFECYCLE.get(EventType(body.event), frozenset())
    return _AFTER_OTHER.get(event_id, frozenset())


def state_pair(state: Any, reason: Any) -> tuple[DomainState, int] | None:
    """libvirt's ``[state, reason]`` as the model's pair, or None if it is not one the model
    knows (a newer libvirt's reason)."""
    try:
        known = DomainState(state)
        return known, int(REASONS[known](reason))
    except (ValueError, TypeError):
        return None
