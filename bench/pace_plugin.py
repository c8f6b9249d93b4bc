"""Sources for benchmarks.

``pace``: one domain that is paused and resumed at a fixed rate, each QMP event stamped with
the wall clock when it is fed, so a consumer can measure the latency from "QEMU said so" to
"I received it".  ``idle``: ``count`` domains started and running, then nothing (the memory
the bridge keeps per idle domain).

```toml
[[sources]]
type = "pace"
rate = 1000      # QMP events per second
count = 10000

[[sources]]
type = "idle"
count = 10000
ready = "/tmp/ready"   # written once every domain runs
```
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import virtbridge


class PaceConfig(virtbridge.PluginConfig, kw_only=True, forbid_unknown_fields=True):
    domain: str = "paced"
    rate: float = 1000.0
    count: int = 10_000


class PaceSource(virtbridge.Source):
    live = False  # a bridge of paced sources stops when they are done

    def __init__(self, config: PaceConfig, ctx: virtbridge.SourceContext) -> None:
        self.ctx = ctx
        self.config = config

    async def run(self) -> None:
        ctx = self.ctx
        name = self.config.domain
        now = virtbridge.Timestamp.from_float
        await ctx.submit(
            virtbridge.Intent(
                domain=name, intent=virtbridge.IntentKind.START, timestamp=now(time.time())
            )
        )
        await ctx.submit(
            virtbridge.QmpEvent(domain=name, event="RESUME", timestamp=now(time.time()))
        )
        interval = 1.0 / self.config.rate
        start = time.monotonic()
        for index in range(self.config.count):
            delay = start + index * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event = "STOP" if index % 2 == 0 else "RESUME"
            await ctx.submit(
                virtbridge.QmpEvent(domain=name, event=event, timestamp=now(time.time()))
            )


class IdleConfig(virtbridge.PluginConfig, kw_only=True, forbid_unknown_fields=True):
    count: int = 1000
    ready: str = ""
    """A file written (with the count) once every domain has been started."""


class IdleSource(virtbridge.Source):
    """``count`` domains started and resumed, as engine_bench's idle domains; then silence
    until the bridge stops."""

    def __init__(self, config: IdleConfig, ctx: virtbridge.SourceContext) -> None:
        self.ctx = ctx
        self.config = config

    async def run(self) -> None:
        stamp = virtbridge.Timestamp.from_float(time.time())
        start, resume = virtbridge.IntentKind.START, "RESUME"
        signals: list[virtbridge.Signal] = []
        for index in range(self.config.count):
            name = f"idle-{index:06d}"
            uuid = f"{index:08d}-0000-4000-8000-000000000000"
            signals.append(virtbridge.Intent(domain=name, intent=start, uuid=uuid, timestamp=stamp))
            signals.append(virtbridge.QmpEvent(domain=name, event=resume, timestamp=stamp))
        for first in range(0, len(signals), 2000):
            await self.ctx.submit_many(signals[first : first + 2000])
        if self.config.ready:
            Path(self.config.ready).write_text(f"{self.config.count}\n")
        await asyncio.Event().wait()


@virtbridge.hookimpl
def virtbridge_source_types() -> list[virtbridge.SourceType[Any]]:
    return [
        virtbridge.SourceType("pace", PaceConfig, PaceSource, "paced pause/resume (bench)"),
        virtbridge.SourceType("idle", IdleConfig, IdleSource, "idle running domains (bench)"),
    ]
