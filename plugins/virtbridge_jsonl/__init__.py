"""The ``jsonl`` sink: CloudEvents 1.0 (structured JSON), one per line, to a file or stdout.

```toml
[[sinks]]
type = "jsonl"
path = "/var/log/virtbridge/events.jsonl"   # or "-" for stdout
fsync = false                               # true: fsync after every batch
batch_size = 2048                           # lines written (and acknowledged) at a time
```

With the durable outbox a batch's position is stored before the next batch is written (so
a crash repeats at most one batch): large batches spread that cost over many lines; at a
low rate a batch is whatever is there, one line or a few.

Each line is a complete CloudEvent, so ``jq`` works on the stream:
``virtbridge replay trace.jsonl --format json | jq -r '.data.event + "/" + .data.detail'``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import IO

import msgspec

import virtbridge


class JsonlConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    path: str = "-"
    fsync: bool = False
    batch_size: int = 2048


class JsonlSink(virtbridge.Sink):
    def __init__(self, config: JsonlConfig, ctx: virtbridge.SinkContext) -> None:
        self.config = config
        self.ctx = ctx
        self.batch_size = config.batch_size
        self.encoder = msgspec.json.Encoder()
        self.stream: IO[bytes] | None = None

    async def open(self) -> None:
        if self.config.path == "-":
            self.stream = sys.stdout.buffer
        else:
            path = os.path.expanduser(self.config.path)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            self.stream = open(path, "ab")  # noqa: SIM115 - kept open for the sink's life

    async def publish(self, records: Sequence[virtbridge.Record]) -> None:
        stream = self.stream
        assert stream is not None
        encode, cloudevent = self.encoder.encode, self.ctx.cloudevent
        try:
            stream.write(b"".join(encode(cloudevent(record)) + b"\n" for record in records))
            stream.flush()
        except BrokenPipeError:
            if self.config.path != "-":
                raise
            self.ctx.stdout_closed()  # the reader is gone: stop, quietly
            return
        if self.config.fsync and self.config.path != "-":
            await asyncio.to_thread(os.fsync, stream.fileno())

    async def check(self) -> str:
        if self.config.path == "-":
            return "writes to stdout"
        directory = os.path.dirname(os.path.expanduser(self.config.path)) or "."
        if not os.access(directory, os.W_OK):
            raise PermissionError(f"cannot write to {directory}")
        return f"writes to {self.config.path}"

    async def close(self) -> None:
        if self.stream is not None:
            self.stream.flush()
            if self.stream is not sys.stdout.buffer:
                self.stream.close()
            self.stream = None


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[JsonlConfig]]:
    return [
        virtbridge.SinkType(
            name="jsonl",
            config=JsonlConfig,
            create=JsonlSink,
            description="CloudEvents 1.0 JSON, one per line, to a file or stdout",
        )
    ]
