"""The outbox: an append-only log of events that every sink reads from its own cursor.

:class:`Outbox` is the interface the runtime uses; ``MemoryOutbox`` (``memory.py``) keeps
everything in memory (nothing survives a restart) and ``SqliteOutbox`` (``sqlite.py``)
stores it durably.  Sequence numbers start at 1; a cursor is the last sequence number a
sink has committed (0 = nothing yet).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from virtbridge.engine.events import Event
from virtbridge.outbox.records import Record


class Outbox(ABC):
    """The log between the engine and the sink workers."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._closed = False
        self._positions: dict[str, str] = {}
        self.saved_domains: dict[str, Any] = {}
        """The engine's records as the last run stored them (durable outboxes; read after
        :meth:`open`): the bridge restores its engine from them."""
        self.saved_next_id = 1
        """The engine's next domain ID as the last run stored it."""

    @property
    @abstractmethod
    def bridge_id(self) -> str:
        """This bridge's identity (the prefix of every event id)."""

    @property
    @abstractmethod
    def last_seq(self) -> int:
        """The sequence number of the newest record (0 when empty)."""

    @property
    def backlog(self) -> int:
        """Events appended but not stored yet."""
        return 0

    @property
    def durable_seq(self) -> int:
        """The newest record that is stored for good; sinks only see records up to here."""
        return self.last_seq

    @abstractmethod
    def append(self, items: Sequence[tuple[Event, dict[str, Any] | None]]) -> list[Record]:
        """Number events (with their enrichment attributes) and queue them for storage.

        Synchronous, so the order of appends is the order of the engine's output whatever the
        sources do concurrently.  :meth:`flush` waits until they are stored."""

    async def flush(self) -> None:
        """Wait until everything appended so far is stored."""

    def store_now(self) -> None:
        """Store what was appended now, if that is cheap (called once a signal's events and
        the engine's records are all handed over)."""

    @abstractmethod
    async def read(self, after: int, limit: int) -> list[Record]:
        """Up to ``limit`` stored records with ``seq > after``, in order."""

    @abstractmethod
    def cursor(self, sink: str) -> int:
        """The last sequence number ``sink`` committed (0 if none)."""

    @abstractmethod
    async def commit(self, sink: str, seq: int) -> None:
        """Record that ``sink`` has delivered everything up to ``seq``."""

    async def open(self) -> None:
        """Prepare storage."""

    async def close(self) -> None:
        self._closed = True
        self._changed.set()

    def register_sink(self, sink: str) -> int:
        """Declare a sink that reads the log; returns its cursor."""
        return self.cursor(sink)

    def position(self, source: str) -> str | None:
        """Where a source (a replay) had got to when its last events were stored."""
        return self._positions.get(source)

    def set_position(self, source: str, value: str) -> None:
        """Durable outboxes store it with the next events; in memory it only lives here."""
        self._positions[source] = value

    def save_domain(self, name: str, record: Any) -> None:
        """Store the engine's record of a domain with the next events (durable outboxes)."""

    def save_next_id(self, next_id: int) -> None:
        """Store the engine's next domain ID with the next events (durable outboxes)."""

    def dead_letter(self, sink: str, records: Sequence[Record], error: str) -> None:
        """Keep events a broker rejected for good, for inspection (durable outboxes)."""

    def drop_oldest(self, sink: str, keep: int) -> int:
        """Overflow policy: let ``sink`` skip all but its newest ``keep`` events; returns how
        many it skipped."""
        return 0

    persists_engine = False
    """Whether the engine's records are stored with the events (restored on restart)."""

    def unregister_sink(self, sink: str) -> None:
        """A sink no longer reads the log (removed from the configuration)."""

    def readers(self) -> dict[str, int]:
        """Every reader the log keeps a cursor for (configured or not): name → cursor."""
        return {}

    async def wait_beyond(self, seq: int, timeout: float | None = None) -> bool:
        """Wait until a record newer than ``seq`` exists; False on timeout or close."""
        while self.durable_seq <= seq and not self._closed:
            self._changed.clear()
            if self.durable_seq > seq:
                break
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except asyncio.TimeoutError:
                return False
        return self.durable_seq > seq

    def _notify(self) -> None:
        self._changed.set()

    def status(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "last_seq": self.last_seq}
