"""What sinks for message buses share: the acknowledgement of a batch that the broker
acknowledges message by message, every domain's current state as a bus keeps it (MQTT's
retained topics, a NATS key-value bucket), published only when an event changed it, and the
pace of those publications.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from virtbridge.engine.lifecycle import EventType
from virtbridge.errors import Rejected
from virtbridge.outbox.records import Record
from virtbridge.wire.cloudevents import DomainStatus


class Acks:
    """The acknowledgement of one :meth:`Sink.publish` call, made of the broker's
    acknowledgements of its messages.

    Count each message with :meth:`expect`, report each answer with :meth:`ok`,
    :meth:`refused` (for good: the record goes to the dead-letter table) or :meth:`failed`
    (try again), then :meth:`seal`: the future completes once every expected message is
    answered, with :class:`virtbridge.Rejected` if some were refused, or with the first
    failure at once.  Answers that come after a failure are ignored."""

    __slots__ = ("_refused", "_sealed", "future", "remaining")

    def __init__(self) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.remaining = 0
        self._refused: list[Record] = []
        self._sealed = False

    def expect(self, count: int = 1) -> None:
        self.remaining += count

    def ok(self) -> None:
        self.remaining -= 1
        self._settle()

    def refused(self, record: Record | None) -> None:
        if record is not None:
            self._refused.append(record)
        self.ok()

    def failed(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def seal(self) -> asyncio.Future[None]:
        self._sealed = True
        self._settle()
        return self.future

    def _settle(self) -> None:
        if not self._sealed or self.remaining > 0 or self.future.done():
            return
        if self._refused:
            self.future.set_exception(Rejected(self._refused, "the broker refused to accept them"))
        else:
            self.future.set_result(None)


class DomainStates:
    """Every domain's state as the bus should hold it, and which changed since the last look.

    :meth:`note` every record handed over; :meth:`changes` then gives, once, each domain
    whose state an event changed, with the event that changed it (None: the domain was
    undefined, its state is to be removed).  After a failed delivery, :meth:`forget`: the
    next events publish their states again."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._seen: dict[str, tuple[object, ...]] = {}
        self._changed: dict[str, Record | None] = {}
        self.current: dict[str, DomainStatus] = {}
        """The newest state published for each domain (sent again when a bus lost it)."""

    def note(self, records: Sequence[Record]) -> bool:
        """Take note of records handed over; whether changes wait to be published."""
        seen, changed = self._seen, self._changed
        for record in records:
            event = record.event
            name = event.domain.name
            life = event.lifecycle
            if life is not None and life.event is EventType.UNDEFINED:
                seen.pop(name, None)
                changed[name] = None
                continue
            key = (event.state, event.reason, event.domain.id, event.domain.uuid)
            if seen.get(name) != key:
                seen[name] = key
                changed[name] = record
        return bool(changed)

    def changes(self) -> dict[str, DomainStatus | None]:
        """The domains whose state changed since the last call, each with its new state."""
        changed, self._changed = self._changed, {}
        out: dict[str, DomainStatus | None] = {}
        for name, record in changed.items():
            if record is None:
                self.current.pop(name, None)
                out[name] = None
                continue
            status = DomainStatus.of(
                record.event, host=self.host, event_id=record.id, sequence=record.seq
            )
            self.current[name] = status
            out[name] = status
        return out

    def forget(self) -> None:
        """Publish every domain's state again with its next event (after a failure)."""
        self._seen.clear()


def follow(source: asyncio.Future[None], dependents: Sequence[Acks]) -> None:
    """When ``source`` completes, so does one expected message of each dependent: the
    states a flush published acknowledge every batch whose events set them."""

    def done(future: asyncio.Future[None]) -> None:
        error = None if future.cancelled() else future.exception()
        for acks in dependents:
            if error is None:
                acks.ok()
            else:
                acks.failed(error)

    source.add_done_callback(done)


class OneAtATime:
    """Runs ``callback`` soon after it is requested, one run at a time: a run returns what
    completes it (the broker's acknowledgement of the states it published, or None: done), and
    requests made meanwhile wait for that, then run once, together.  A lone event's state goes
    out at the end of the current turn of the loop; in a burst, each run publishes everything
    that changed while the previous one was on its way, each domain once, so states go at the
    broker's pace and never more often than it answers."""

    def __init__(self, callback: Callable[[], asyncio.Future[None] | None]) -> None:
        self._callback = callback
        self._handle: asyncio.Handle | None = None
        self._running: asyncio.Future[None] | None = None
        self._wanted = False

    @property
    def pending(self) -> bool:
        """Whether a run is requested and has not started yet."""
        return self._handle is not None or self._wanted

    def request(self) -> None:
        if self.pending:
            return
        if self._running is not None:
            self._wanted = True
            return
        self._handle = asyncio.get_running_loop().call_soon(self._run)

    def run_now(self) -> None:
        """Run a requested callback at once, without waiting for the one on its way (on
        closing)."""
        if self.pending:
            if self._handle is not None:
                self._handle.cancel()
            self._run()

    def _run(self) -> None:
        self._handle = None
        self._wanted = False
        done = self._callback()
        if done is not None and not done.done():
            self._running = done
            done.add_done_callback(self._finished)

    def _finished(self, done: asyncio.Future[None]) -> None:
        if self._running is done:
            self._running = None
        if self._wanted:
            self._wanted = False
            self._handle = asyncio.get_running_loop().call_soon(self._run)
