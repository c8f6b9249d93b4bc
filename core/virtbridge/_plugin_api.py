"""What plugins implement and what the runtime hands them.

A plugin offers *types*: a :class:`SourceType` or :class:`SinkType` names a configuration
struct and a factory.  The runtime validates the ``[[sources]]``/``[[sinks]]`` table against
the struct, calls the factory, and owns the object it returns: it runs it, restarts it,
closes it.  Sources and sinks are asyncio objects; hooks stay synchronous.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import msgspec

from virtbridge._engine_actions import Action
from virtbridge._model import Event
from virtbridge._records import Record
from virtbridge._signals import Signal

if TYPE_CHECKING:
    from virtbridge._engine import Outcome


class PluginConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base for a source's or sink's configuration struct.

    Subclass it with typed fields and defaults; the ``[[sources]]``/``[[sinks]]`` table is
    validated against it (unknown keys and wrong types are configuration errors).  ``type``
    and ``name`` are common to all.  Further checks go in ``__post_init__``: raise
    ``ValueError("KEY: what is wrong")`` and the error names that key.
    """

    type: str
    name: str = ""


class SinkConfig(PluginConfig, kw_only=True, forbid_unknown_fields=True):
    """Base for a sink's configuration: adds the delivery policy every sink has."""

    overflow: Literal["keep", "drop-oldest"] = "keep"
    """When this sink falls more than ``max_lag`` events behind: keep everything (the outbox
    grows, with a loud warning) or drop its oldest undelivered events (logged and counted)."""
    max_lag: int = 1_000_000
    on_reject: Literal["dead-letter", "drop"] = "dead-letter"
    """Events the broker rejects for good: keep them in the dead-letter table (``virtbridge
    dead-letters``) or drop them (counted)."""
    retry_max_interval: float = 30.0
    """Longest wait between retries of a failing publish (backoff doubles up to it)."""

    def __post_init__(self) -> None:
        if self.max_lag < 1:
            raise ValueError("max_lag: must be at least 1")
        if self.retry_max_interval <= 0:
            raise ValueError("retry_max_interval: must be positive")


class Rejected(Exception):
    """Raised by :meth:`Sink.publish` when the broker refused some records for good.

    ``records`` are the refused ones (the rest of the batch counts as delivered); the sink's
    ``on_reject`` policy decides whether they go to the dead-letter table."""

    def __init__(self, records: Sequence[Record], reason: str) -> None:
        super().__init__(reason)
        self.records = list(records)
        self.reason = reason


class SourceContext(ABC):
    """What a running source can do: feed signals to the engine."""

    name: str
    logger: logging.Logger
    host: str
    state_dir: Path
    """The bridge's state directory; a source keeps its files under ``state_dir / <its name>``."""

    def position(self) -> str | None:
        """Where this source had got to when its last events were stored (see
        :meth:`set_position`), or None: lets a replay resume after a restart."""
        return None

    def set_position(self, value: str) -> None:
        """Record where this source is; stored atomically with the events submitted so far."""

    @abstractmethod
    def claim(self, domain: str) -> None:
        """Declare that this source owns ``domain``'s process (even while it is not running),
        so control requests and the engine's actions for it come here."""

    @abstractmethod
    async def submit(self, signal: Signal) -> Outcome:
        """Feed one signal.  Its events are in the outbox when this returns; actions for the
        domain are passed to the owning source's :meth:`Source.perform`."""

    @abstractmethod
    async def submit_many(self, signals: Sequence[Signal]) -> int:
        """Feed signals in order (faster for bulk input); returns how many events resulted."""


class Source(ABC):
    """Turns hypervisor input into signals."""

    @abstractmethod
    async def run(self, ctx: SourceContext) -> None:
        """Run until cancelled, or return when the input is exhausted (a finished replay)."""

    async def perform(self, action: Action) -> None:
        """Carry out an engine action for a domain this source owns.  A source that owns no
        processes (attach mode, replay) ignores actions it cannot perform."""

    def refuses(self, verb: str, domain: str) -> str | None:
        """Why this source cannot carry out a control verb (``virtbridge ctl``) for one of its
        domains, or None if it can.  Asked before the intent reaches the engine, so a source
        that only observes never lets the engine believe a command was sent."""
        return None

    async def check(self) -> str:
        """Try the source once (``virtbridge check --connect``); return a one-line result or
        raise with a message a user can act on."""
        return "ok"

    async def aclose(self) -> None:
        """Release resources; called once when the source is removed or the bridge stops."""


class SinkContext(ABC):
    """What a sink can ask the runtime: names and the wire format."""

    name: str
    host: str
    logger: logging.Logger

    @abstractmethod
    def cloudevent(self, record: Record) -> dict[str, Any]:
        """The record as a structured CloudEvent (a JSON-ready dict)."""

    @abstractmethod
    def topic(self, record: Record, default: str) -> str:
        """The topic/subject for a record: the first ``virtbridge_event_topic`` answer, or
        ``default``."""


class Sink(ABC):
    """Delivers events somewhere.  One worker per sink reads the outbox from the sink's own
    cursor and calls :meth:`publish` with batches in order."""

    batch_size: int = 256

    async def open(self) -> None:
        """Connect.  Raise to have the runtime retry with backoff."""

    @abstractmethod
    async def publish(self, records: Sequence[Record]) -> None:
        """Deliver the records, in order.  Return only when they are delivered (acknowledged
        by the broker); raise to have the whole batch retried."""

    async def close(self) -> None:
        """Flush and disconnect; called once when the sink is removed or the bridge stops."""

    async def check(self) -> str:
        """Try the sink once (``virtbridge check --connect``)."""
        return "ok"


C = TypeVar("C", bound=PluginConfig)


@dataclass(frozen=True)
class SourceType(Generic[C]):
    """A source type a plugin offers under ``name`` (``type = "<name>"`` in the config)."""

    name: str
    config: type[C]
    create: Callable[[C], Source]
    description: str = ""
    requires: tuple[str, ...] = field(default=())
    """Importable module names the type needs; missing ones are a configuration error."""
    extra: str = ""
    """The optional-dependency extra that installs ``requires`` (``virtbridge[extra]``)."""


@dataclass(frozen=True)
class SinkType(Generic[C]):
    """A sink type a plugin offers under ``name``; ``create`` gets the validated config and a
    :class:`SinkContext`."""

    name: str
    config: type[C]
    create: Callable[[C, SinkContext], Sink]
    description: str = ""
    requires: tuple[str, ...] = field(default=())
    extra: str = ""


__all__ = [
    "Event",
    "PluginConfig",
    "Rejected",
    "Sink",
    "SinkConfig",
    "SinkContext",
    "SinkType",
    "Source",
    "SourceContext",
    "SourceType",
]
