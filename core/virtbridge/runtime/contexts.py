"""The pieces the bridge hands its sources and sinks: a runner per source, the contexts
sources and sinks see, and the outbox the configuration asks for.

They reach the bridge only through :class:`Hub`, the part of it they need, so this module
does not depend on the bridge's (which builds them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from virtbridge.config.load import Component, Config
from virtbridge.engine.actions import Action
from virtbridge.engine.engine import Outcome
from virtbridge.engine.signals import Signal
from virtbridge.outbox.interface import Outbox
from virtbridge.outbox.memory import MemoryOutbox
from virtbridge.outbox.records import Record
from virtbridge.plugin.api import SinkContext, Source, SourceContext
from virtbridge.plugin.loading import Hooks
from virtbridge.wire.cloudevents import CloudEventBuilder


class Hub(Protocol):
    """What sources and sinks reach of the bridge through their contexts."""

    @property
    def host(self) -> str: ...

    config: Config
    outbox: Outbox
    hooks: Hooks

    def claim(self, domain: str, runner: SourceRunner) -> None: ...

    async def submit(self, signal: Signal, runner: SourceRunner | None = None) -> Outcome: ...

    async def submit_many(
        self, batch: Sequence[Signal], runner: SourceRunner | None = None
    ) -> int: ...

    def output_closed(self) -> None: ...


@dataclass(eq=False)
class SourceRunner:
    """A running source: its task, its action queue and what it has done."""

    component: Component
    bridge: Hub
    source: Source = field(init=False)
    """Created with a context that refers to this runner, so set right after it."""
    task: asyncio.Task[None] | None = None
    actions: asyncio.Queue[Action] = field(default_factory=asyncio.Queue)
    action_task: asyncio.Task[None] | None = None
    signals: int = 0
    events: int = 0
    state: str = "starting"
    error: str = ""

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def live(self) -> bool:
        return self.source.live


class BridgeSourceContext(SourceContext):
    def __init__(self, runner: SourceRunner) -> None:
        self.runner = runner
        self.name = runner.name
        self.logger = logging.getLogger(f"virtbridge.source.{runner.name}")
        self.host = runner.bridge.host
        self.state_dir = Path(runner.bridge.config.bridge.state_dir)

    def claim(self, domain: str) -> None:
        self.runner.bridge.claim(domain, self.runner)

    def position(self) -> str | None:
        return self.runner.bridge.outbox.position(self.name)

    def set_position(self, value: str) -> None:
        self.runner.bridge.outbox.set_position(self.name, value)

    async def submit(self, signal: Signal) -> Outcome:
        return await self.runner.bridge.submit(signal, self.runner)

    async def submit_many(self, signals_: Sequence[Signal]) -> int:
        return await self.runner.bridge.submit_many(signals_, self.runner)


class BridgeSinkContext(SinkContext):
    def __init__(self, bridge: Hub, name: str) -> None:
        self.bridge = bridge
        self.name = name
        self.host = bridge.host
        self.logger = logging.getLogger(f"virtbridge.sink.{name}")
        self._builder = CloudEventBuilder(f"virtbridge://{bridge.host}")

    def cloudevent(self, record: Record) -> dict[str, Any]:
        return self._builder.build(record.event, record.id, record.seq, record.attributes)

    def stdout_closed(self) -> None:
        quiet_stdout()
        self.bridge.output_closed()

    def topic(self, record: Record, default: str) -> str:
        hooks = self.bridge.hooks
        if not hooks.has("virtbridge_event_topic"):
            return default
        chosen = hooks.first(
            "virtbridge_event_topic", event=record.event, sink=self.name, default=default
        )
        return chosen if isinstance(chosen, str) and chosen else default


def private_dir(path: Path) -> None:
    """The state directory (the outbox, sockets, QEMU's files and save images) is the bridge
    user's alone: created 0700, and tightened to it if it was made wider before."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077 and path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
        logging.getLogger("virtbridge").info(
            "state directory %s was readable by others (%o): now 0700", path, mode
        )


def quiet_stdout() -> None:
    """Point standard output at /dev/null: whatever is still buffered for a reader that left
    goes nowhere, instead of failing again when the interpreter exits."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def make_outbox(config: Config) -> Outbox:
    settings = config.bridge
    if settings.outbox == "memory":
        return MemoryOutbox()
    from virtbridge.outbox.sqlite import SqliteOutbox

    return SqliteOutbox(
        Path(settings.state_dir) / "outbox.sqlite3",
        window=settings.outbox_window,
        max_events=settings.outbox_max_events,
        synchronous=settings.outbox_sync.upper(),
    )
