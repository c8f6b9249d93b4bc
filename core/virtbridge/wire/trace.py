"""Trace files: recorded hypervisor input, one JSON object per line.

The format (documented for users in ``examples/traces/README.md``)::

    {"domain": "vm1", "event": "SHUTDOWN", "data": {"guest": true},
     "timestamp": {"seconds": 1764100633, "microseconds": 983000}}
    {"domain": "vm1", "signal": "intent", "intent": "start", "on_crash": "restart"}
    {"domain": "vm1", "signal": "eof"}

A line with ``"signal"`` is that signal; otherwise a line with ``"event"`` is a QMP event
(QEMU's own object plus ``"domain"``).  Blank lines and lines starting with ``#`` are
comments.  Unknown keys are ignored so newer traces still load.  A bad line raises
:class:`TraceError` naming what is wrong; the caller decides whether to skip it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import msgspec

from virtbridge.engine.payloads import EventID
from virtbridge.engine.policy import LifecycleAction, ShutdownTimeoutAction
from virtbridge.engine.signals import (
    Intent,
    IntentKind,
    LibvirtEvent,
    MonitorEof,
    MonitorError,
    ObservedStatus,
    PolicyOverrides,
    ProcessExit,
    ProcessLost,
    QmpEvent,
    Signal,
    Timer,
)
from virtbridge.engine.states import REASONS, DomainState
from virtbridge.engine.time import Timestamp
from virtbridge.errors import TraceError
from virtbridge.wire.payloads import enum_value, payload_from_object, payload_to_object

POLICY_KEYS = ("on_poweroff", "on_reboot", "on_crash", "shutdown_timeout", "on_shutdown_timeout")


_decoder = msgspec.json.Decoder()


def parse_line(line: str | bytes) -> Signal | None:
    """Parse one trace line; ``None`` for blank and comment lines."""
    text = line.strip()
    if not text or text[:1] in ("#", b"#"):
        return None
    try:
        obj = _decoder.decode(text)
    except msgspec.DecodeError as exc:
        raise TraceError(f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise TraceError(f"expected a JSON object, got {type(obj).__name__}")
    return parse_object(obj)


def parse_object(obj: dict[str, Any]) -> Signal:
    """Turn one decoded trace object into a signal."""
    domain = obj.get("domain")
    if not isinstance(domain, str) or not domain:
        raise TraceError('missing "domain" (a non-empty string)')
    common: dict[str, Any] = {"domain": domain, "timestamp": _timestamp(obj.get("timestamp"))}
    uuid = obj.get("uuid")
    if uuid is not None:
        common["uuid"] = _expect(uuid, str, "uuid")
    kind = obj.get("signal")
    if kind is None:
        if "event" not in obj:
            raise TraceError('a line needs "event" (a QMP event) or "signal"')
        data = obj.get("data")
        if data is not None and not isinstance(data, dict):
            raise TraceError('"data" must be an object')
        return QmpEvent(event=_expect(obj["event"], str, "event"), data=data, **common)
    parser = _SIGNALS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise TraceError(f"unknown signal {kind!r}; expected one of: {', '.join(_SIGNALS)}")
    return parser(obj, common)


def _expect(value: Any, kind: type[Any], key: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TraceError(f'"{key}" must be {_TYPE_NAMES.get(kind, kind.__name__)}')
    return value


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object"}


def _timestamp(value: Any) -> Timestamp | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TraceError('"timestamp" must be {"seconds": S, "microseconds": U}')
    seconds, micros = value.get("seconds"), value.get("microseconds", 0)
    if not isinstance(seconds, int) or not isinstance(micros, int) or not 0 <= micros < 1_000_000:
        raise TraceError('"timestamp" must be {"seconds": S, "microseconds": U} (integers)')
    return Timestamp(seconds, micros)


def _exit(obj: dict[str, Any], common: dict[str, Any]) -> Signal:
    status, number = obj.get("status"), obj.get("signal_number")
    return ProcessExit(
        status=None if status is None else _expect(status, int, "status"),
        signal_number=None if number is None else _expect(number, int, "signal_number"),
        **common,
    )


def _policy(obj: dict[str, Any]) -> PolicyOverrides | None:
    values: dict[str, Any] = {}
    for key in POLICY_KEYS:
        if key not in obj:
            continue
        value = obj[key]
        try:
            if key == "shutdown_timeout":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError
                values[key] = float(value)
            elif key == "on_shutdown_timeout":
                values[key] = ShutdownTimeoutAction(value)
            else:
                values[key] = LifecycleAction(value)
        except ValueError:
            choices = _choices(key)
            raise TraceError(f'"{key}" must be {choices}, not {value!r}') from None
    return PolicyOverrides(**values) if values else None


def _choices(key: str) -> str:
    if key == "shutdown_timeout":
        return "a number of seconds"
    enum: type[Enum] = ShutdownTimeoutAction if key == "on_shutdown_timeout" else LifecycleAction
    return "one of " + ", ".join(repr(member.value) for member in enum)


def _intent(obj: dict[str, Any], common: dict[str, Any]) -> Signal:
    try:
        kind = IntentKind(obj.get("intent"))
    except ValueError:
        names = ", ".join(member.value for member in IntentKind)
        raise TraceError(f'"intent" must be one of: {names}') from None
    return Intent(
        intent=kind,
        paused=_expect(obj.get("paused", False), bool, "paused"),
        image_paused=_expect(obj.get("image_paused", False), bool, "image_paused"),
        policy=_policy(obj),
        **common,
    )


def _status(obj: dict[str, Any], common: dict[str, Any]) -> Signal:
    reply = obj.get("status")
    if not isinstance(reply, dict) or not isinstance(reply.get("status"), str):
        raise TraceError('"status" must be the query-status reply: {"status": S, "running": B}')
    running = reply.get("running", reply["status"] == "running")
    return ObservedStatus(
        status=reply["status"],
        running=_expect(running, bool, "status.running"),
        fresh=_expect(obj.get("fresh", False), bool, "fresh"),
        **common,
    )


def _libvirt(obj: dict[str, Any], common: dict[str, Any]) -> Signal:
    event_id = enum_value(EventID, obj.get("event_id"), "event_id")
    payload = payload_from_object(event_id, obj.get("payload", {}))
    state = obj.get("state")
    reason = obj.get("reason")
    state_member = None if state is None else enum_value(DomainState, state, "state")
    reason_code = None
    if reason is not None:
        if state_member is None:
            raise TraceError('"reason" needs "state"')
        reason_code = int(enum_value(REASONS[state_member], reason, "reason"))
    return LibvirtEvent(
        event_id=event_id,
        payload=payload,
        id=_expect(obj.get("id", -1), int, "id"),
        state=state_member,
        reason=reason_code,
        resync=_expect(obj.get("resync", False), bool, "resync"),
        **common,
    )


_SIGNALS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Signal]] = {
    "eof": lambda obj, common: MonitorEof(**common),
    "lost": lambda obj, common: ProcessLost(**common),
    "exit": _exit,
    "intent": _intent,
    "status": _status,
    "timer": lambda obj, common: Timer(**common),
    "libvirt": _libvirt,
    "monitor-error": lambda obj, common: MonitorError(
        message=str(obj.get("message", "")), **common
    ),
}


def signal_to_object(signal: Signal) -> dict[str, Any]:
    """The trace-file form of a signal (the inverse of :func:`parse_object`)."""
    obj: dict[str, Any] = {"domain": signal.domain}
    if isinstance(signal, QmpEvent):
        obj["event"] = signal.event
        if signal.data is not None:
            obj["data"] = signal.data
    else:
        obj["signal"] = _SIGNAL_NAMES[type(signal)]
        obj.update(_signal_fields(signal))
    if signal.uuid is not None:
        obj["uuid"] = signal.uuid
    if signal.timestamp is not None:
        obj["timestamp"] = signal.timestamp.to_json()
    return obj


_SIGNAL_NAMES: dict[type[Signal], str] = {
    MonitorEof: "eof",
    ProcessLost: "lost",
    ProcessExit: "exit",
    Intent: "intent",
    ObservedStatus: "status",
    Timer: "timer",
    LibvirtEvent: "libvirt",
    MonitorError: "monitor-error",
}


def _signal_fields(signal: Signal) -> dict[str, Any]:
    if isinstance(signal, ProcessExit):
        return {
            key: value
            for key, value in (("status", signal.status), ("signal_number", signal.signal_number))
            if value is not None
        }
    if isinstance(signal, Intent):
        fields: dict[str, Any] = {"intent": signal.intent.value}
        if signal.paused:
            fields["paused"] = True
        if signal.image_paused:
            fields["image_paused"] = True
        if signal.policy is not None:
            fields.update(
                {
                    key: value.value if isinstance(value, Enum) else value
                    for key in POLICY_KEYS
                    if (value := getattr(signal.policy, key)) is not None
                }
            )
        return fields
    if isinstance(signal, ObservedStatus):
        fields = {"status": {"status": signal.status, "running": signal.running}}
        if signal.fresh:
            fields["fresh"] = True
        return fields
    if isinstance(signal, LibvirtEvent):
        fields = {
            "event_id": signal.event_id.name,
            "payload": payload_to_object(signal.payload),
            "id": signal.id,
        }
        if signal.state is not None:
            fields["state"] = signal.state.name
            if signal.reason is not None:
                fields["reason"] = REASONS[signal.state](signal.reason).name
        if signal.resync:
            fields["resync"] = True
        return fields
    if isinstance(signal, MonitorError):
        return {"message": signal.message} if signal.message else {}
    return {}
