"""A source for benchmarks: one domain that is paused and resumed at a fixed rate, each QMP
event stamped with the wall clock when it is fed, so a consumer can measure the latency from
"QEMU said so" to "I received it".

```toml
[[sources]]
type = "pace"
rate = 1000      # QMP events per second
count = 10000
```
"""

from __future__ import annotations

import asyncio
import time

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


@virtbridge.hookimpl
def virtbridge_source_types() -> list[virtbridge.SourceType[PaceConfig]]:
    return [virtbridge.SourceType("pace", PaceConfig, PaceSource, "paced pause/resume (bench)")]
