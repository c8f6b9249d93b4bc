"""The ``null`` sink: accepts every event and does nothing (for benchmarks and tests)."""

from __future__ import annotations

from collections.abc import Sequence

import virtbridge


class NullConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    batch_size: int = 1024


class NullSink(virtbridge.Sink):
    def __init__(self, config: NullConfig, ctx: virtbridge.SinkContext) -> None:
        self.batch_size = config.batch_size
        self.count = 0

    async def publish(self, records: Sequence[virtbridge.Record]) -> None:
        self.count += len(records)


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[NullConfig]]:
    return [
        virtbridge.SinkType(
            name="null", config=NullConfig, create=NullSink, description="discard every event"
        )
    ]
