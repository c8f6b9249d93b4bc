"""A plugin for the latency benchmark: ``timed-<type>`` for every built-in sink type.

``timed-mqtt`` takes exactly ``mqtt``'s settings and is the ``mqtt`` sink, plus one thing: for
every event with a timestamp it notes the wall clock when the sink was done with it (its
``publish`` returned, or the broker acknowledged it), next to the event's own timestamp
(QEMU's, for QMP events).  At close the pairs go, as float64s, to the file named by
``$VIRTBRIDGE_BENCH_TIMES``; when the sink has opened, ``$VIRTBRIDGE_BENCH_TIMES.open``
appears, so the benchmark knows when to start.
"""

from __future__ import annotations

import importlib
import os
import time
from array import array
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import virtbridge

BUILTIN = (
    "virtbridge_null",
    "virtbridge_jsonl",
    "virtbridge_log",
    "virtbridge_domain_events",
    "virtbridge_mqtt",
    "virtbridge_nats",
)


class TimedSink(virtbridge.Sink):
    """``inner``, timed."""

    def __init__(self, inner: virtbridge.Sink) -> None:
        self.inner = inner
        self.batch_size = inner.batch_size
        self.window = inner.window
        self.pairs = array("d")
        self.path = os.environ.get("VIRTBRIDGE_BENCH_TIMES", "")

    async def open(self) -> None:
        await self.inner.open()
        self.batch_size = self.inner.batch_size  # as the sink chose them once connected
        self.window = self.inner.window
        if self.path:
            Path(self.path + ".open").touch()

    def _done(self, records: Sequence[virtbridge.Record]) -> None:
        now = time.time()
        pairs = self.pairs
        for record in records:
            stamp = record.event.timestamp
            if stamp is not None:
                pairs.append(stamp.as_float())
                pairs.append(now)

    async def publish(self, records: Sequence[virtbridge.Record]) -> Awaitable[None] | None:
        ack = await self.inner.publish(records)
        if ack is None:
            self._done(records)
            return None
        return self._acknowledged(ack, records)

    async def _acknowledged(
        self, ack: Awaitable[None], records: Sequence[virtbridge.Record]
    ) -> None:
        await ack
        self._done(records)

    async def close(self) -> None:
        await self.inner.close()
        if self.path:
            with open(self.path, "wb") as out:
                self.pairs.tofile(out)

    async def check(self) -> str:
        return await self.inner.check()

    def status(self) -> dict[str, Any]:
        return self.inner.status()


def _timed(kind: virtbridge.SinkType[Any]) -> virtbridge.SinkType[Any]:
    create = kind.create

    def make(config: Any, ctx: virtbridge.SinkContext) -> virtbridge.Sink:
        return TimedSink(create(config, ctx))

    return virtbridge.SinkType(
        name=f"timed-{kind.name}",
        config=kind.config,
        create=make,
        description=f"{kind.name}, timed (bench)",
        requires=kind.requires,
        extra=kind.extra,
    )


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[Any]]:
    kinds = []
    for name in BUILTIN:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        kinds += [_timed(kind) for kind in module.virtbridge_sink_types()]
    return kinds
