"""Table lookups shared by the styles, each with its program's rule for an unknown index."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from virtbridge import Lifecycle
from virtbridge_domain_events import _tables as T

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1


def py_item(table: Sequence[str], index: int) -> str:
    """``Description.__getitem__``: Python indexing, the number itself when out of range."""
    try:
        return table[int(index)]
    except IndexError:
        return str(int(index))


def item(table: Sequence[str] | Mapping[int, str], index: int, unknown: str) -> str:
    """A C switch or a ``VIR_ENUM`` lookup: ``unknown`` for anything outside the table."""
    if isinstance(table, Mapping):
        return table.get(int(index), unknown)
    return table[index] if 0 <= index < len(table) else unknown


def lifecycle_words(style: str, payload: Lifecycle) -> tuple[str, str]:
    event, detail = int(payload.event), int(payload.detail)
    if style == "python":
        try:
            name, details = T.PY_DOM_EVENTS[event]
        except IndexError:
            name, details = str(event), ()
        word = py_item(details, detail)
    else:
        name = item(T.C_EVENTS, event, T.C_UNKNOWN)
        tables = T.C_DETAILS if style == "c" else T.VIRSH_DETAILS
        word = item(tables.get(payload.event, ()), detail, T.C_UNKNOWN)
    extension = T.EXTENSION_DETAILS.get((payload.event, detail))
    if extension is not None:
        word = extension
    return name, word


def typed_value(value: object) -> str | None:
    """A typed parameter as C's ``printf`` (and virsh's ``virTypedParameterToString``) show it."""
    if isinstance(value, bool):  # VIR_TYPED_PARAM_BOOLEAN is printed with %d
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return None


def compact_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
