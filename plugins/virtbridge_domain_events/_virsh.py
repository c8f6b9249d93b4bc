"""The ``virsh`` style: ``virsh event --all --loop`` and ``virsh qemu-monitor-event --loop``."""

from __future__ import annotations

import datetime as _dt

from virtbridge import (
    AgentLifecycle,
    BalloonChange,
    BlockJob,
    BlockThreshold,
    Device,
    DiskChange,
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
    Payload,
    QemuMonitor,
    RtcChange,
    Timestamp,
    TrayChange,
    TypedParams,
    Watchdog,
)
from virtbridge_domain_events import _tables as T
from virtbridge_domain_events._lookup import U64, compact_json, item, lifecycle_words, typed_value

# --- virsh: tools/virsh-domain-event.c and qemu-monitor-event -------------------------------


def render_virsh(event: Event, timestamp: bool) -> str:
    # virsh prints the prefix once per message, so only before its first line.
    prefix = _virsh_timestamp(event.timestamp) if timestamp else ""
    name, payload = event.domain.name, event.payload
    if isinstance(payload, Lifecycle):
        return prefix + T.VIRSH_LIFECYCLE % (name, *lifecycle_words("virsh", payload))
    if isinstance(payload, QemuMonitor):
        details = T.VIRSH_NULLSTR if payload.data is None else compact_json(payload.data)
        if timestamp:
            return prefix + T.VIRSH_QEMU_MONITOR_TIMESTAMP % (payload.event, name, details)
        when = event.timestamp or Timestamp(0)
        args = (payload.event, when.seconds, when.microseconds, name, details)
        return T.VIRSH_QEMU_MONITOR % args
    label = T.VIRSH_NAMES[event.kind]
    if event.kind is EventID.IO_ERROR_REASON:
        label = T.VIRSH_IO_ERROR_REASON_NAME
    if event.kind not in T.VIRSH_FORMATS:  # reboot, control-error and the PM events
        return prefix + T.VIRSH_GENERIC % (label, name)
    return (
        prefix + T.VIRSH_HEAD % (label, name) + T.VIRSH_FORMATS[event.kind] % _virsh_args(payload)
    )


def _virsh_args(payload: Payload) -> tuple[object, ...]:
    unknown, unsupported, null = T.VIRSH_UNKNOWN, T.VIRSH_UNSUPPORTED, T.VIRSH_NULLSTR
    match payload:
        case RtcChange(utcoffset=offset):
            return (offset,)
        case Watchdog(action=action):
            return (item(T.VIRSH_WATCHDOG_ACTIONS, action, unknown),)
        case IoError(src_path=src, dev_alias=alias, action=action):
            return (src, alias, item(T.VIRSH_IO_ERROR_ACTIONS, action, unknown))
        case IoErrorReason(src_path=src, dev_alias=alias, action=action, reason=reason):
            return (src, alias, item(T.VIRSH_IO_ERROR_ACTIONS, action, unknown), reason)
        case Graphics(phase=phase, local=local, remote=remote, auth_scheme=auth):
            families = T.VIRSH_GRAPHICS_FAMILIES
            identities = "".join(T.VIRSH_GRAPHICS_IDENTITY % pair for pair in payload.subject)
            return (
                item(T.VIRSH_GRAPHICS_PHASES, phase, unknown),
                item(families, local.family, unknown),
                local.node,
                local.service,
                item(families, remote.family, unknown),
                remote.node,
                remote.service,
                auth,
                identities,
            )
        case BlockJob(disk=disk, type=job, status=status):
            return (
                item(T.VIRSH_BLOCK_JOB_TYPES, job, T.VIRSH_BLOCK_JOB_UNKNOWN),
                disk,
                item(T.VIRSH_BLOCK_JOB_STATUS, status, unknown),
            )
        case DiskChange(old_src_path=old, new_src_path=new, dev_alias=alias, reason=reason):
            return (
                alias,
                null if old is None else old,
                null if new is None else new,
                item(T.VIRSH_DISK_CHANGE_REASONS, reason, unknown),
            )
        case TrayChange(dev_alias=alias, reason=reason):
            return (alias, item(T.VIRSH_TRAY_CHANGE_REASONS, reason, unknown))
        case BalloonChange(actual=actual):
            return (actual & U64,)
        case Device(dev_alias=alias):
            return (alias,)
        case TypedParams(params=params):
            # A parameter virTypedParameterToString() cannot show is left out.
            texts = ((key, typed_value(value)) for key, value in params.items())
            return ("".join(T.VIRSH_TYPED_PARAM % pair for pair in texts if pair[1] is not None),)
        case AgentLifecycle(state=state, reason=reason):
            return (
                item(T.VIRSH_AGENT_STATES, state, unsupported),
                item(T.VIRSH_AGENT_REASONS, reason, unsupported),
            )
        case MigrationIteration(iteration=iteration):
            return (iteration,)
        case MetadataChange(type=kind, nsuri=nsuri):
            return (
                item(T.VIRSH_METADATA_TYPES, kind, unsupported),
                null if nsuri is None else nsuri,
            )
        case BlockThreshold(dev=dev, path=path, threshold=threshold, excess=excess):
            return (dev, null if path is None else path, threshold & U64, excess & U64)
        case MemoryFailure(recipient=recipient, action=action, flags=flags):
            return (
                item(T.VIRSH_MEMORY_FAILURE_RECIPIENTS, recipient, unsupported),
                item(T.VIRSH_MEMORY_FAILURE_ACTIONS, action, unsupported),
                int(bool(flags & 1)),
                int(bool(flags & 2)),
            )
        case MemoryDeviceSizeChange(alias=alias, size=size):
            return (alias, size & U64)
        case NicMacChange(alias=alias, old_mac=old, new_mac=new):
            return (alias, old, new)
    return ()


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _virsh_timestamp(when: Timestamp | None) -> str:
    """``virTimeStringThenRaw()``: UTC, milliseconds truncated, always ``+0000``."""
    millis = 0 if when is None else when.seconds * 1000 + when.microseconds // 1000
    moment = _EPOCH + _dt.timedelta(milliseconds=millis)
    fields = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    return T.VIRSH_TIMESTAMP % (*fields, millis % 1000)
