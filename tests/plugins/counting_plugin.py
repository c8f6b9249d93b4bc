"""A test plugin that counts events and adds an attribute (the well-behaved neighbour)."""

from __future__ import annotations

import virtbridge

SEEN: list[virtbridge.Event] = []


@virtbridge.hookimpl
def virtbridge_on_event(event: virtbridge.Event) -> None:
    SEEN.append(event)


@virtbridge.hookimpl
def virtbridge_enrich_event(event: virtbridge.Event) -> dict[str, object]:
    return {"rack": "r12", "Bad-Name": 1}


@virtbridge.hookimpl
def virtbridge_filter_event(event: virtbridge.Event, sink: str) -> bool:
    # the "crashes" sink only gets CRASHED lifecycle events
    life = event.lifecycle
    return sink != "crashes" or (life is not None and life.event == virtbridge.EventType.CRASHED)
