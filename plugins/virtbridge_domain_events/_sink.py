"""The sink that prints events in one of the example programs' formats."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import IO, Literal

import virtbridge

from ._formats import format_event


class DomainEventsConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    format: Literal["python", "c", "virsh"] = "python"
    """python: libvirt-python's event-test.py; c: libvirt's event-test.c; virsh: virsh event."""
    path: str = "-"
    """Where to print: a file (appended to) or "-" for stdout."""
    timestamp: bool = False
    """virsh style only: prefix each line with the event's time, as ``virsh event --timestamp``."""
    monitor_events: bool = False
    """Also print generic QEMU monitor events (not printed by the example programs)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.timestamp and self.format != "virsh":
            raise ValueError(
                "timestamp: only the virsh format has timestamps (virsh event --timestamp)"
            )


class DomainEventsSink(virtbridge.Sink):
    batch_size = 512

    def __init__(self, config: DomainEventsConfig, ctx: virtbridge.SinkContext) -> None:
        self.config = config
        self.ctx = ctx
        self.stream: IO[str] | None = None

    async def open(self) -> None:
        if self.config.path == "-":
            self.stream = sys.stdout
        else:
            path = os.path.expanduser(self.config.path)
            self.stream = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the sink's life

    async def publish(self, records: Sequence[virtbridge.Record]) -> None:
        stream = self.stream
        assert stream is not None
        style, monitor, stamp = (
            self.config.format,
            self.config.monitor_events,
            self.config.timestamp,
        )
        lines: list[str] = []
        for record in records:
            lines.extend(format_event(record.event, style, monitor_events=monitor, timestamp=stamp))
        if lines:
            try:
                stream.write("\n".join(lines) + "\n")
                stream.flush()
            except BrokenPipeError:
                if self.config.path != "-":
                    raise
                self.ctx.stdout_closed()  # the reader is gone: stop, quietly

    async def close(self) -> None:
        if self.stream is not None and self.stream is not sys.stdout:
            self.stream.close()
        self.stream = None
