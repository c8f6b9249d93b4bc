"""Event payloads as JSON objects, both ways: the one walker the trace format and the
CloudEvents format share.

Enum fields are written by name (``"family": "IPV4"``) and, in the wire format, also by
libvirt's number (``"family_code": 0``), at every depth: a GRAPHICS event's addresses are
payloads inside the payload.  Reading accepts either spelling; a ``<field>_code`` wins over
the name, because numbers are what libvirt defines and a newer libvirt may add names this
version does not know.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import msgspec

from virtbridge.engine.lifecycle import DETAILS, EventType
from virtbridge.engine.payloads import PAYLOAD_TYPES, EventID, Lifecycle, Payload
from virtbridge.errors import TraceError


def payload_to_object(payload: Payload, *, codes: bool = False) -> dict[str, Any]:
    """A payload as JSON-compatible data, enum fields by name (and, with ``codes``, also as
    ``<field>_code`` with libvirt's number, as the wire format has them)."""
    if isinstance(payload, Lifecycle) and not codes:
        event = EventType(payload.event)
        return {"event": event.name, "detail": DETAILS[event](payload.detail).name}
    return _fields(payload, codes)


def _fields(value: msgspec.Struct, codes: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in value.__struct_fields__:
        item = getattr(value, name)
        if isinstance(item, IntEnum):
            out[name] = item.name
            if codes:
                out[f"{name}_code"] = int(item)
        elif isinstance(item, msgspec.Struct):
            out[name] = _fields(item, codes)
        elif isinstance(item, tuple):
            out[name] = [list(pair) for pair in item]
        else:
            out[name] = item
    return out


def payload_from_object(event_id: EventID, value: Any) -> Payload:
    """The payload of an ``event_id`` event from its JSON form (enum fields by name, by
    number, or as ``<field>_code``); :class:`TraceError` says what is wrong."""
    if not isinstance(value, dict):
        raise TraceError('"payload" must be an object')
    if event_id is EventID.LIFECYCLE:
        event = enum_value(EventType, _pick(value, "event"), "payload.event")
        detail = enum_value(DETAILS[event], _pick(value, "detail"), "payload.detail")
        return Lifecycle(event, detail)
    payload: Payload = _struct(PAYLOAD_TYPES[event_id], value, "payload", event_id.name)
    return payload


def _struct(struct: type[msgspec.Struct], value: Any, where: str, kind: str) -> Any:
    if not isinstance(value, dict):
        raise TraceError(f'"{where}" must be an object')
    fields: dict[str, Any] = {}
    for field in msgspec.structs.fields(struct):
        if field.name not in value and f"{field.name}_code" not in value:
            continue
        raw = _pick(value, field.name)
        place = f"{where}.{field.name}"
        if isinstance(field.type, type) and issubclass(field.type, IntEnum):
            raw = enum_value(field.type, raw, place)
        elif isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            raw = _struct(field.type, raw, place, kind)
        fields[field.name] = raw
    try:
        return msgspec.convert(fields, struct)
    except msgspec.ValidationError as exc:
        raise TraceError(f"bad {kind} payload: {exc}") from None


def _pick(value: dict[str, Any], name: str) -> Any:
    code = value.get(f"{name}_code")
    return value.get(name) if code is None else code


def enum_value(enum: type[IntEnum], value: Any, key: str) -> Any:
    """``value`` (a member's name, any case, ``-`` for ``_``, or its number) as a member of
    ``enum``; :class:`TraceError` listing the choices otherwise."""
    try:
        if isinstance(value, str):
            return enum[value.upper().replace("-", "_")]
        if isinstance(value, int) and not isinstance(value, bool):
            return enum(value)
    except (KeyError, ValueError):
        pass
    names = ", ".join(member.name for member in enum)
    raise TraceError(f'"{key}" must be one of {names} (or its number), not {value!r}')
