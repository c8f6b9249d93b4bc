"""The outbox in memory: fast, and nothing survives a restart (``outbox = "memory"``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from virtbridge.engine.events import Event
from virtbridge.outbox.interface import Outbox
from virtbridge.outbox.records import Record, record_id


class MemoryOutbox(Outbox):
    """An outbox in memory: fast, bounded only by what the slowest sink has not committed."""

    def __init__(self, bridge_id: str | None = None) -> None:
        super().__init__()
        self._bridge_id = bridge_id or str(uuid.uuid4())
        self._records: list[Record] = []
        self._base = 0  # seq of the record before _records[0]
        self._last = 0
        self._cursors: dict[str, int] = {}

    @property
    def bridge_id(self) -> str:
        return self._bridge_id

    @property
    def last_seq(self) -> int:
        return self._last

    def append(self, items: Sequence[tuple[Event, dict[str, Any] | None]]) -> list[Record]:
        out = []
        prefix = self._bridge_id
        seq = self._last
        for event, attributes in items:
            seq += 1
            out.append(Record(seq, record_id(prefix, seq), event, attributes))
        self._records.extend(out)
        self._last = seq
        if not self._cursors:  # nobody reads: keep nothing
            self._compact()
        self._notify()
        return out

    async def read(self, after: int, limit: int) -> list[Record]:
        start = max(after - self._base, 0)
        return self._records[start : start + limit]

    def cursor(self, sink: str) -> int:
        return self._cursors.get(sink, 0)

    def register_sink(self, sink: str) -> int:
        # A sink seen for the first time gets what happens from now on.
        return self._cursors.setdefault(sink, self._last)

    def unregister_sink(self, sink: str) -> None:
        self._cursors.pop(sink, None)
        self._compact()

    def readers(self) -> dict[str, int]:
        return dict(self._cursors)

    async def commit(self, sink: str, seq: int) -> None:
        if seq > self._cursors.get(sink, 0):
            self._cursors[sink] = seq
            self._compact()

    def drop_oldest(self, sink: str, keep: int) -> int:
        cursor = self._cursors.get(sink, 0)
        target = self._last - keep
        if target <= cursor:
            return 0
        self._cursors[sink] = target
        self._compact()
        return target - cursor

    def _compact(self) -> None:
        low = min(self._cursors.values(), default=self._last)
        drop = low - self._base
        if drop > 0 and (drop >= 1024 or drop == len(self._records)):
            del self._records[:drop]
            self._base = low

    def status(self) -> dict[str, Any]:
        return {**super().status(), "held": len(self._records)}
