"""What plugins implement and what the runtime hands them.

A plugin offers *types*: a :class:`SourceType` or :class:`SinkType` names a configuration
struct and a factory.  The runtime validates the ``[[sources]]``/``[[sinks]]`` table against
the struct, calls the factory, and owns the object it returns: it runs it, restarts it,
closes it.  Sources and sinks are asyncio objects; hooks stay synchronous.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import msgspec

from virtbridge.engine.actions import Action
from virtbridge.engine.events import Event
from virtbridge.engine.signals import Signal
from virtbridge.errors import Rejected
from virtbridge.outbox.records import Record
from virtbridge.wire.cloudevents import DomainStatus, WireEvent

if TYPE_CHECKING:
    from virtbridge.engine.engine import Outcome


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


class BridgeInfo(Protocol):
    """The running bridge, as ``virtbridge_bridge_started``/``_stopping`` hooks see it."""

    @property
    def host(self) -> str:
        """The host name events are published under (``[bridge] host``)."""
        ...

    @property
    def state_dir(self) -> Path:
        """The bridge's state directory (outbox, control socket, QEMU's files)."""
        ...

    @property
    def config_path(self) -> Path | None:
        """The configuration file, or None when running the built-in configuration."""
        ...

    def status(self) -> dict[str, Any]:
        """The figures ``virtbridge status`` shows (sources, sinks, cursors, lag, errors)."""
        ...


class SourceContext(ABC):
    """What a source can do: feed signals to the engine.  Given to the source when it is
    created; :meth:`submit` and :meth:`claim` work once the source runs."""

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
    """Turns hypervisor input into signals.

    Created by its :class:`SourceType` from its validated configuration and its
    :class:`SourceContext` (as a sink is from its configuration and :class:`SinkContext`);
    then :meth:`run` runs, and :meth:`close` is called once at the end."""

    live: bool = True
    """True: runs until the bridge stops (a watcher).  False: its input ends (a replay), and
    the bridge stops by itself once every source that is not live has finished."""

    @abstractmethod
    async def run(self) -> None:
        """Run until cancelled, or return when the input is exhausted (a finished replay)."""

    async def perform(self, action: Action) -> None:
        """Carry out an engine action for a domain this source owns.  A source that owns no
        processes (attach mode, replay) ignores actions it cannot perform."""

    def refuses(self, verb: str, domain: str) -> str | None:
        """Why this source cannot carry out a control verb (``virtbridge ctl``) for one of its
        domains, or None if it can.  Asked before the intent reaches the engine, so a source
        that only observes never lets the engine believe a command was sent."""
        return None

    async def start_domain(self, domain: str) -> str | None:
        """``virtbridge ctl DOMAIN start`` for a domain this source claimed: start its process
        (whose events then arrive as usual).  Return None, or libvirt's error message.  The
        default refuses: most sources watch processes they cannot start."""
        return f"no source here can start domain {domain!r}"

    async def check(self) -> str:
        """Try the source once (``virtbridge check --connect``); return a one-line result or
        raise with a message a user can act on."""
        return "ok"

    async def close(self) -> None:
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

    def stdout_closed(self) -> None:
        """Standard output, which this sink writes to, was closed by its reader (``| head``):
        the bridge stops at once, quietly, as a Unix tool does.  Call it on BrokenPipeError."""


Acknowledgement = Awaitable[None]
"""What :meth:`Sink.publish` may return: completes when the broker has acknowledged every
record of the batch, or raises (see :meth:`Sink.publish`)."""


class Sink(ABC):
    """Delivers events somewhere.  One worker per sink reads the outbox from the sink's own
    cursor and calls :meth:`publish` with batches in order.

    Delivery is pipelined: the worker hands over the next batch while earlier ones still wait
    for their acknowledgements, up to :attr:`window` records, and advances the sink's cursor
    as acknowledgements arrive, in order.  A sink whose writes are done when ``publish``
    returns (a file, a log) just returns None."""

    batch_size: int = 256
    """Records per :meth:`publish` call, at most."""
    window: int = 0
    """Records that may be handed over and not yet acknowledged; 0: one batch (each batch is
    acknowledged before the next is handed over)."""

    async def open(self) -> None:
        """Connect.  Raise to have the runtime retry with backoff."""

    @abstractmethod
    async def publish(self, records: Sequence[Record]) -> Acknowledgement | None:
        """Hand ``records`` over for delivery, in order.

        Return None when they are delivered already, or an awaitable that completes when the
        broker has acknowledged all of them.  Either way, failing means: raise (or let the
        awaitable raise) :class:`Rejected` for records the broker refused for good (the rest
        count as delivered), or any other exception to have the worker back off and hand
        over everything from the first unacknowledged record again (so a sink sees a record
        again only after a failure; the event keeps its id).  ``publish`` may wait, for
        example while the connection is down."""

    async def close(self) -> None:
        """Flush and disconnect; called once when the sink is removed or the bridge stops."""

    async def check(self) -> str:
        """Try the sink once (``virtbridge check --connect``)."""
        return "ok"

    def status(self) -> dict[str, Any]:
        """Figures of the sink's own (connection, buffers) for ``virtbridge status``."""
        return {}


C = TypeVar("C", bound=PluginConfig)


@dataclass(frozen=True)
class SourceType(Generic[C]):
    """A source type a plugin offers under ``name`` (``type = "<name>"`` in the config)."""

    name: str
    config: type[C]
    create: Callable[[C, SourceContext], Source]
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


class TailOptions(msgspec.Struct, kw_only=True, frozen=True):
    """What ``virtbridge tail`` asks of a feed."""

    url: str
    """The bus to read, as the user wrote it (``mqtt://host:port/prefix``, ``nats://...``)."""
    host: str | None = None
    """Only events of the bridge on this host (None: every host)."""
    domain: str | None = None
    """Only events of this domain (None: every domain)."""
    states: bool = True
    """Start with every domain's current state."""
    since: str = "new"
    """Where events start, where the bus keeps history: ``new`` (from now), ``all`` (the
    oldest kept), or an RFC 3339 time."""
    stream: str | None = None
    """The JetStream stream to read (NATS); None: a plain subscription."""
    bucket: str | None = None
    """The key-value bucket with the states (NATS); None: the feed's default."""
    prefix: str | None = None
    """Topic/subject prefix (None: the feed's default or the URL's path)."""
    username: str = ""
    password: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_insecure: bool = False


class TailItem(msgspec.Struct, frozen=True):
    """One thing a feed read: a domain's current state or an event, with the bytes as they
    were on the bus (``--format json`` prints those)."""

    value: WireEvent | DomainStatus
    raw: bytes


@dataclass(frozen=True)
class TailType:
    """A feed for ``virtbridge tail URL``: reads what bridges published, for the URL schemes
    it names.  ``open`` returns an async iterator: first the current states (when asked),
    then events as they arrive, until cancelled."""

    schemes: tuple[str, ...]
    open: Callable[[TailOptions], AsyncIterator[TailItem]]
    description: str = ""
    requires: tuple[str, ...] = field(default=())
    extra: str = ""


@dataclass(frozen=True)
class RecorderType:
    """A live input ``virtbridge record --<name> ADDRESS`` captures as a trace file.

    ``open(address, domain)`` returns an async iterator: first comment lines (``str``) for
    the file's header, then signals in order, until the input ends (its last signal says
    how, an EOF for example) or the recording is stopped (the iterator is closed).  It
    raises, with a message a user can act on, when it cannot connect.  ``domain`` is the
    name the user gave, or None for the input's own."""

    name: str
    open: Callable[[str, str | None], AsyncIterator[str | Signal]]
    description: str = ""
    requires: tuple[str, ...] = field(default=())
    extra: str = ""


__all__ = [
    "Acknowledgement",
    "BridgeInfo",
    "Event",
    "PluginConfig",
    "RecorderType",
    "Rejected",
    "Sink",
    "SinkConfig",
    "SinkContext",
    "SinkType",
    "Source",
    "SourceContext",
    "SourceType",
    "TailItem",
    "TailOptions",
    "TailType",
]
