"""A test plugin whose every per-event hook raises (always with the same error)."""

from __future__ import annotations

import virtbridge


@virtbridge.hookimpl
def virtbridge_on_event(event: virtbridge.Event) -> None:
    raise RuntimeError("on_event is broken")


@virtbridge.hookimpl
def virtbridge_filter_event(event: virtbridge.Event, sink: str) -> bool:
    raise KeyError("filter is broken")


@virtbridge.hookimpl
def virtbridge_enrich_event(event: virtbridge.Event) -> dict[str, object]:
    raise ValueError("enrich is broken")
