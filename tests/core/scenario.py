"""A compact notation for engine scenarios, so each test reads like the reference's tables.

Steps are strings: an upper-case word is a QMP event (optionally followed by its ``data``
as JSON), a lower-case word is a control-plane intent or another signal (optionally
followed by extra trace fields as JSON).  They are turned into signals through the trace
parser, so the notation is exactly the trace-file format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from virtbridge import Engine, Event, EventID, Outcome, Signal, Timestamp
from virtbridge.engine.lifecycle import DETAILS, EventType
from virtbridge.engine.states import REASONS
from virtbridge.wire.trace import parse_object

OTHER_SIGNALS = {"eof", "exit", "status", "timer", "libvirt", "monitor-error", "lost"}

GUEST_POWEROFF = 'SHUTDOWN {"guest": true, "reason": "guest-shutdown"}'
HOST_SIGNAL = 'SHUTDOWN {"guest": false, "reason": "host-signal"}'
HOST_RESET = 'RESET {"guest": false, "reason": "host-qmp-system-reset"}'
GUEST_RESET = 'RESET {"guest": true, "reason": "guest-reset"}'


def signal(step: str, domain: str = "vm", clock: list[int] | None = None) -> Signal:
    word, _, rest = step.partition(" ")
    extra: dict[str, Any] = json.loads(rest) if rest.strip() else {}
    obj: dict[str, Any] = {"domain": domain}
    if clock is not None:
        clock[0] += 1
        obj["timestamp"] = {"seconds": clock[0], "microseconds": 0}
    if word.isupper():
        obj["event"] = word
        if rest.strip():
            obj["data"] = extra
    elif word in OTHER_SIGNALS:
        obj["signal"] = word
        obj.update(extra)
    else:
        obj["signal"] = "intent"
        obj["intent"] = word
        obj.update(extra)
    return parse_object(obj)


def describe(event: Event) -> str:
    """``RESUMED/UNPAUSED [4/0]`` for lifecycle events, the event ID's name otherwise."""
    life = event.lifecycle
    if life is None:
        return event.kind.name
    kind = EventType(life.event)
    detail = DETAILS[kind](life.detail)
    return f"{kind.name}/{detail.name} [{int(kind)}/{int(detail)}]"


def state_of(engine: Engine, domain: str = "vm") -> str:
    view = engine.view(domain)
    if view is None:
        return "gone"
    reason = REASONS[view.state](view.reason)
    return f"{view.state.name}/{reason.name} [{int(view.state)}/{int(reason)}]"


class Run:
    """Feeds steps to one engine and keeps everything that came out."""

    def __init__(self, engine: Engine | None = None, domain: str = "vm") -> None:
        self.engine = engine if engine is not None else Engine()
        self.domain = domain
        self.outcomes: list[Outcome] = []
        self.clock = [1_700_000_000]

    def feed(self, steps: Iterable[str]) -> list[Event]:
        events: list[Event] = []
        for step in steps:
            outcome = self.engine.feed(signal(step, self.domain, self.clock))
            self.outcomes.append(outcome)
            events.extend(outcome.events)
        return events

    def described(self, steps: Iterable[str]) -> list[str]:
        return [describe(event) for event in self.feed(steps)]

    @property
    def state(self) -> str:
        return state_of(self.engine, self.domain)

    def at(self, seconds: int) -> Timestamp:
        return Timestamp(seconds)


def lifecycle_only(events: Iterable[Event]) -> list[Event]:
    return [event for event in events if event.kind is EventID.LIFECYCLE]
