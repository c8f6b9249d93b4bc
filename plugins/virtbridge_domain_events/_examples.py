"""The ``python`` and ``c`` styles: libvirt-python's and libvirt's ``event-test`` examples."""

from __future__ import annotations

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
    TrayChange,
    TypedParams,
    Watchdog,
)
from virtbridge_domain_events import _tables as T
from virtbridge_domain_events._lookup import (
    U32,
    U64,
    compact_json,
    item,
    lifecycle_words,
    py_item,
    typed_value,
)

# --- python: examples/event-test.py -------------------------------------------------------


def render_python(event: Event) -> str:
    name, ident = event.domain.name, event.domain.id
    if isinstance(event.payload, Lifecycle):
        words = lifecycle_words("python", event.payload)
        # Registered twice: domainEventRegister(cb, 1), then domainEventRegisterAny(..., 2).
        return "".join(T.PY_LIFECYCLE % (opaque, name, ident, *words) + "\n" for opaque in (1, 2))
    return T.PY_FORMATS[event.kind] % (name, ident, *_python_args(event.payload)) + "\n"


def _python_args(payload: Payload) -> tuple[object, ...]:
    match payload:
        case RtcChange(utcoffset=offset):
            return (offset,)
        case BalloonChange(actual=actual):
            return (actual,)
        case MigrationIteration(iteration=iteration):
            return (iteration,)
        case Watchdog(action=action):
            return (py_item(T.PY_WATCHDOG_ACTIONS, action),)
        case IoError(src_path=src, dev_alias=alias, action=action):
            return (src, alias, py_item(T.PY_ERROR_EVENTS, action))
        case IoErrorReason(src_path=src, dev_alias=alias, action=action, reason=reason):
            return (src, alias, py_item(T.PY_ERROR_EVENTS, action), reason)
        case Graphics(phase=phase, auth_scheme=auth):
            return (py_item(T.PY_GRAPHICS_PHASES, phase), auth)
        case BlockJob(disk=disk, type=job, status=status):
            types, statuses = T.PY_BLOCK_JOB_TYPES, T.PY_BLOCK_JOB_STATUS
            return (py_item(types, job), disk, py_item(statuses, status))
        case DiskChange(old_src_path=old, new_src_path=new, dev_alias=alias, reason=reason):
            return (old, new, alias, py_item(T.PY_DISK_EVENTS, reason))
        case TrayChange(dev_alias=alias, reason=reason):
            return (alias, py_item(T.PY_TRAY_EVENTS, reason))
        case Device(dev_alias=alias):
            return (alias,)
        case TypedParams(params=params):
            return (dict(params),)
        case AgentLifecycle(state=state, reason=reason):
            return (py_item(T.PY_AGENT_STATES, state), py_item(T.PY_AGENT_REASONS, reason))
        case MetadataChange(type=kind, nsuri=nsuri):
            return (int(kind), nsuri)
        case BlockThreshold(dev=dev, path=path, threshold=threshold, excess=excess):
            return (dev, path, threshold, excess)
        case MemoryFailure(recipient=recipient, action=action, flags=flags):
            return (int(recipient), int(action), flags)
        case MemoryDeviceSizeChange(alias=alias, size=size):
            return (alias, size)
        case NicMacChange(alias=alias, old_mac=old, new_mac=new):
            return (alias, old, new)
        case QemuMonitor(event=name, data=data):
            # The binding hands the details over as a string, or None when there are none.
            return (name, None if data is None else compact_json(data))
    return ()  # Empty and PMReason: nothing but the domain


# --- c: examples/c/misc/event-test.c --------------------------------------------------------


def render_c(event: Event) -> str:
    name, ident = event.domain.name, event.domain.id
    if isinstance(event.payload, Lifecycle):
        words = lifecycle_words("c", event.payload)
        # Registered twice: virConnectDomainEventRegister(myDomainEventCallback1), then the
        # LIFECYCLE row of the table with myDomainEventCallback2.
        return "".join(
            T.C_LIFECYCLE % (func, name, ident, *words) for func in T.C_LIFECYCLE_CALLBACKS
        )
    head = f"{T.C_CALLBACKS[event.kind]} EVENT: Domain {name}({ident})"
    return head + T.C_FORMATS[event.kind] % _c_args(event.kind, event.payload)


def _c_args(kind: EventID, payload: Payload) -> tuple[object, ...]:
    unknown = T.C_UNKNOWN
    match payload:
        case RtcChange(utcoffset=offset):
            return (offset,)
        case Watchdog(action=action):
            return (int(action),)
        case IoError(src_path=src, dev_alias=alias, action=action):
            return (src, alias, int(action))
        case IoErrorReason(src_path=src, dev_alias=alias, action=action, reason=reason):
            return (src, alias, int(action), reason)
        case Graphics(phase=phase, local=local, remote=remote, auth_scheme=auth):
            identities = "".join(T.C_GRAPHICS_IDENTITY % pair for pair in payload.subject)
            return (
                item(T.C_GRAPHICS_PHASES, phase, unknown),
                int(local.family),
                local.node,
                local.service,
                int(remote.family),
                remote.node,
                remote.service,
                auth,
                identities,
            )
        case BlockJob(disk=disk, type=job, status=status):
            return (
                T.C_OPAQUE[kind],
                disk,
                item(T.C_BLOCK_JOB_TYPES, job, unknown),
                item(T.C_BLOCK_JOB_STATUS, status, unknown),
            )
        case DiskChange(old_src_path=old, new_src_path=new, dev_alias=alias, reason=reason):
            # Plain printf("%s", NULL), which glibc prints as "(null)".
            return (
                T.C_PRINTF_NULL if old is None else old,
                T.C_PRINTF_NULL if new is None else new,
                alias,
                item(T.C_DISK_CHANGE_REASONS, reason, unknown),
            )
        case TrayChange(dev_alias=alias, reason=reason):
            return (alias, item(T.C_TRAY_CHANGE_REASONS, reason, unknown))
        case BalloonChange(actual=actual):
            return (actual & U64,)
        case Device(dev_alias=alias):
            return (alias,)
        case TypedParams(params=params):
            return ("".join(_c_param(key, value) for key, value in params.items()),)
        case AgentLifecycle(state=state, reason=reason):
            return (
                item(T.C_AGENT_STATES, state, unknown),
                item(T.C_AGENT_REASONS, reason, unknown),
            )
        case MigrationIteration(iteration=iteration):
            return (iteration,)
        case MetadataChange(type=kind_, nsuri=nsuri):
            nsuri_text = T.C_METADATA_NO_NSURI if nsuri is None else nsuri
            return (item(T.C_METADATA_TYPES, kind_, unknown), nsuri_text)
        case BlockThreshold(dev=dev, path=path, threshold=threshold, excess=excess):
            path_text = T.C_NULLSTR if path is None else path
            return (dev, path_text, threshold & U64, excess & U64)
        case MemoryFailure(recipient=recipient, action=action, flags=flags):
            return (int(recipient), int(action), flags & U32)
        case MemoryDeviceSizeChange(alias=alias, size=size):
            return (alias, size & U64)
        case NicMacChange(alias=alias, old_mac=old, new_mac=new):
            return (alias, old, new)
        case QemuMonitor(event=name, data=data):
            return (name, T.C_NULLSTR if data is None else compact_json(data))
    return ()


def _c_param(key: str, value: object) -> str:
    text = typed_value(value)
    return T.C_TYPED_PARAM_UNKNOWN % key if text is None else T.C_TYPED_PARAM % (key, text)
