"""The ``log`` sink: every event as a Python logging record, human-readable or JSON.

This is the short example to copy when writing a sink.

```toml
[[sinks]]
type = "log"
format = "human"          # or "json" (the CloudEvent, one line)
logger = "virtbridge.events"
level = "info"
```
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import msgspec

import virtbridge

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


class LogConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    format: Literal["human", "json"] = "human"
    logger: str = "virtbridge.events"
    level: Literal["debug", "info", "warning"] = "info"


class LogSink(virtbridge.Sink):
    def __init__(self, config: LogConfig, ctx: virtbridge.SinkContext) -> None:
        self.ctx = ctx
        self.json = config.format == "json"
        self.level = LEVELS[config.level]
        self.logger = logging.getLogger(config.logger)
        self.encoder = msgspec.json.Encoder()

    async def publish(self, records: Sequence[virtbridge.Record]) -> None:
        logger, level = self.logger, self.level
        if not logger.isEnabledFor(level):
            return
        for record in records:
            if self.json:
                logger.log(level, "%s", self.encoder.encode(self.ctx.cloudevent(record)).decode())
            else:
                logger.log(level, "#%d %s", record.seq, record.event.describe())


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[LogConfig]]:
    return [
        virtbridge.SinkType(
            name="log",
            config=LogConfig,
            create=LogSink,
            description="events as Python logging records (human or JSON)",
        )
    ]
