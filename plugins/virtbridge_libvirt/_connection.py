"""One libvirt connection: every domain event callback, the close callback and keepalive.

Everything here that talks to libvirt blocks, so the source calls it from worker threads.
The callbacks run in libvirt's event thread (see ``_binding``): they only copy what libvirt
gave them (the domain's name, UUID and ID are local to the callback's domain object, no
call goes to the daemon) into an :class:`Inbox` and return.  Calling libvirt back from a
callback could deadlock: libvirt holds its event state while it dispatches.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from virtbridge import EventID


@dataclass(frozen=True)
class Raw:
    """One callback as libvirt made it."""

    seq: int
    event_id: EventID
    name: str
    uuid: str | None
    id: int
    arguments: tuple[Any, ...]
    received: float
    """``time.time()`` in the callback: libvirt's event reached this client."""
    domain: Any = field(compare=False, repr=False)
    """The callback's ``virDomain``, kept to read the state after the event."""


@dataclass(frozen=True)
class Closed:
    """The close callback: the connection is gone (``reason`` is libvirt's
    ``virConnectCloseReason``: 0 error, 1 end of file, 2 keepalive timeout, 3 client)."""

    seq: int
    reason: int
    connection: int
    """Which connection (its serial number) was closed: a late close of an old one is stale."""


@dataclass(frozen=True)
class Listing:
    """Every domain and its state, as listed after ``seq`` (events numbered after it may be
    newer than what the listing says about their domain)."""

    seq: int
    domains: dict[str, tuple[str | None, int, int, int]]
    """name → (uuid, id, state, reason)."""
    first: bool = False
    """Listed right after connecting (as opposed to looking again a little later)."""


Item = Raw | Closed | Listing

CLOSE_REASONS = {0: "I/O error", 1: "end of file", 2: "keepalive timeout", 3: "client request"}


class Inbox:
    """What libvirt's thread hands the bridge's event loop, in order.

    ``put`` may be called from any thread; it wakes the loop at most once per batch, so a
    burst of events costs one wake-up rather than one per event.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: collections.deque[Item] = collections.deque()
        self.ready = asyncio.Event()
        self._woken = False
        self._serial = itertools.count(1)

    def next_seq(self) -> int:
        return next(self._serial)

    def put(self, item: Item) -> None:
        self.items.append(item)
        if not self._woken:
            self._woken = True
            # A closed loop (the bridge stopped) has nobody left to wake.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.ready.set)

    async def take(self, limit: int) -> list[Item]:
        """Wait for items; return up to ``limit`` of them, oldest first."""
        while not self.items:
            await self.ready.wait()
            self.ready.clear()
            self._woken = False  # cleared before draining, so a put from now on wakes again
        taken: list[Item] = []
        items = self.items
        while items and len(taken) < limit:
            taken.append(items.popleft())
        return taken


def event_ids(libvirt: Any) -> Iterator[EventID]:
    """The domain event IDs this binding knows (its ``VIR_DOMAIN_EVENT_ID_*`` constants)."""
    offered = {
        value
        for name, value in vars(libvirt).items()
        if name.startswith("VIR_DOMAIN_EVENT_ID_") and isinstance(value, int)
    }
    for event_id in EventID:
        if event_id is not EventID.QEMU_MONITOR and int(event_id) in offered:
            yield event_id


class Connection:
    """An open libvirt connection with every domain event registered.  Blocking."""

    def __init__(self, libvirt: Any, uri: str, *, read_only: bool, inbox: Inbox | None) -> None:
        self.libvirt = libvirt
        self.uri = uri
        self.read_only = read_only
        self.inbox = inbox
        """Where events go; None for a connection that only looks (``check --connect``)."""
        self.serial = inbox.next_seq() if inbox is not None else 0
        self.conn: Any = None
        self.callbacks: list[int] = []
        self.registered: list[EventID] = []
        self.refused: dict[EventID, str] = {}
        self.keepalive: str = "off"
        self._closing = threading.Event()
        self._lock = threading.Lock()

    def open(self, keepalive_interval: int, keepalive_count: int) -> None:
        """Connect, register every event ID libvirt accepts and the close callback, and
        turn keepalive on.  The event loop must be running already.

        A :meth:`close` called meanwhile (its caller gave up waiting) waits for the open to
        finish and then undoes it, so an abandoned connection never delivers events."""
        with self._lock:
            if not self._closing.is_set():
                self._open(keepalive_interval, keepalive_count)

    def _open(self, keepalive_interval: int, keepalive_count: int) -> None:
        libvirt = self.libvirt
        opener = libvirt.openReadOnly if self.read_only else libvirt.open
        self.conn = opener(self.uri)
        try:
            for event_id in event_ids(libvirt):
                try:
                    handle = self.conn.domainEventRegisterAny(
                        None, int(event_id), self._callback, event_id
                    )
                except libvirt.libvirtError as exc:
                    self.refused[event_id] = str(exc)  # an older daemon: not offered there
                    continue
                self.callbacks.append(handle)
                self.registered.append(event_id)
            self.conn.registerCloseCallback(self._closed, None)
            if keepalive_interval > 0:
                try:
                    self.conn.setKeepAlive(keepalive_interval, keepalive_count)
                    self.keepalive = f"{keepalive_interval} s x {keepalive_count}"
                except libvirt.libvirtError as exc:
                    self.keepalive = f"unsupported ({exc})"  # local drivers (test://) have none
        except BaseException:
            self._teardown()
            raise

    def _callback(self, _conn: Any, dom: Any, *rest: Any) -> None:
        """Any domain event: ``rest`` is libvirt's arguments, then our opaque (the ID)."""
        inbox = self.inbox
        if inbox is None or self._closing.is_set():
            return
        event_id: EventID = rest[-1]
        try:
            name, uuid, ident = dom.name(), dom.UUIDString(), dom.ID()
        except Exception:  # a domain object libvirt could not describe: nothing to report
            return
        inbox.put(
            Raw(
                inbox.next_seq(),
                event_id,
                name,
                uuid,
                ident,
                rest[:-1],
                time.time(),
                dom,
            )
        )

    def _closed(self, _conn: Any, reason: int, _opaque: object) -> None:
        inbox = self.inbox
        if inbox is not None and not self._closing.is_set():
            inbox.put(Closed(inbox.next_seq(), reason, self.serial))

    def close(self) -> None:
        """Deregister and close (errors ignored: the daemon may be gone already)."""
        self._closing.set()  # callbacks stop handing events over from now on
        with self._lock:
            self._teardown()

    def _teardown(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        errors = (self.libvirt.libvirtError, RuntimeError, KeyError)
        for handle in self.callbacks:
            with contextlib.suppress(*errors):
                conn.domainEventDeregisterAny(handle)
        self.callbacks.clear()
        with contextlib.suppress(*errors):
            conn.unregisterCloseCallback()
        with contextlib.suppress(*errors):
            conn.close()

    # -- reading ----------------------------------------------------------------------------

    def list_domains(self) -> dict[str, tuple[str | None, int, int, int]]:
        """Every domain, active or not: name → (uuid, id, state, reason)."""
        found: dict[str, tuple[str | None, int, int, int]] = {}
        for dom in self.conn.listAllDomains(0):
            try:
                state, reason = dom.state()
                found[dom.name()] = (dom.UUIDString(), dom.ID(), state, reason)
            except self.libvirt.libvirtError:
                continue  # undefined between the listing and the question: not there
        return found

    def version(self) -> str:
        try:
            number = int(self.conn.getLibVersion())
        except self.libvirt.libvirtError:
            return "unknown"
        return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"

    def lookup(self, name: str) -> Any:
        return self.conn.lookupByName(name)
