"""The ``libvirt`` source: subscribe to an existing libvirt and forward what it reports.

libvirt already computed these events, so they reach the engine as ``LibvirtEvent`` signals
with libvirt's codes unchanged; the engine records them and derives nothing.  With each
event goes the domain's state afterwards, as libvirt reports it when that agrees with the
event (libvirt may have moved on by the time it is asked; then the state the event implies
is used).

The connection is kept: on close (libvirtd restarted, keepalive timeout) the source
reconnects with jittered backoff, registers every callback again and looks at every domain
(``_resync``), right away and again a little later.

With ``allow_commands = true`` the engine's actions for ``virtbridge ctl`` become libvirt
calls (``cont`` → virDomainResume, ``system_powerdown`` → virDomainShutdown or, for a
``reboot``, virDomainReboot, the shutdown timeout's kill → virDomainDestroy, ...); the
shutdown request and its timeout are the engine's, as for the QMP sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import virtbridge
from virtbridge import EventType

from ._binding import event_loop as ensure_event_loop
from ._binding import load
from ._config import LibvirtConfig
from ._connection import CLOSE_REASONS, Closed, Connection, Inbox, Item, Listing, Raw
from ._payloads import Unrepresentable, payload, state_pair, states_after
from ._resync import Seen, View, plan

T = TypeVar("T")

BATCH = 4096
"""Inbox items handled (and events submitted) together at most."""

COMMANDS: dict[str, str] = {
    "cont": "resume",
    "stop": "suspend",
    "system_reset": "reset",
    "system_wakeup": "pMWakeup",
}
"""The engine's monitor commands → the virDomain method that does the same through libvirt.
``system_powerdown`` (a :class:`virtbridge.PowerButton`) is virDomainShutdown, or
virDomainReboot when the button is pressed for a reboot; ``set-action``
is not needed: libvirt applies the domain's own on_reboot."""

_STOPPED = EventType.STOPPED
_DEFINITION = frozenset({EventType.DEFINED, EventType.UNDEFINED})


class LibvirtSource(virtbridge.Source):
    def __init__(self, config: LibvirtConfig, ctx: virtbridge.SourceContext) -> None:
        self.config = config
        self.libvirt: Any = None
        self.ctx = ctx
        self.inbox: Inbox | None = None
        self.connection: Connection | None = None
        self.view = View()
        self._view_changed = False
        self._told = False
        self._announce = False
        self._last_seq: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warned: set[str] = set()
        self.reconnects = 0
        self.dropped = 0

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        ctx = self.ctx
        self.libvirt = load()
        ensure_event_loop(self.libvirt)  # before any connection is opened
        self.inbox = Inbox(asyncio.get_running_loop())
        stored = ctx.position()
        self.view = View.decode(stored)
        self._told = stored is not None  # an earlier run told the bridge about these domains
        await self._connect()
        while True:
            await self._handle(await self.inbox.take(BATCH))

    async def _handle(self, items: Sequence[Item]) -> None:
        """Items in order: runs of events are forwarded together, markers in between."""
        run: list[Raw] = []
        for item in items:
            if isinstance(item, Raw):
                run.append(item)
                continue
            if run:
                await self._forward(run)
                run = []
            if isinstance(item, Listing):
                await self._resync(item)
            elif isinstance(item, Closed):
                await self._lost(item)
        if run:
            await self._forward(run)
        self._store_view()

    # -- connecting ---------------------------------------------------------------------------

    async def _connect(self) -> None:
        """Open a connection, retrying with jittered backoff until one opens."""
        config, ctx = self.config, self.ctx
        assert self.inbox is not None
        delay, failures = config.reconnect_min, 0
        while True:
            connection = Connection(
                self.libvirt, config.uri, read_only=not config.allow_commands, inbox=self.inbox
            )
            opening = functools.partial(
                connection.open, config.keepalive_interval, config.keepalive_count
            )
            try:
                await self._blocking(opening)
            except (self.libvirt.libvirtError, asyncio.TimeoutError) as exc:
                # Undo it even if it completes after we stopped waiting (close waits for it).
                self._spawn(asyncio.to_thread(connection.close))
                failures += 1
                log = ctx.logger.warning if failures == 1 else ctx.logger.debug
                log("cannot connect to %s (retrying): %s", config.uri, _reason(exc))
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, config.reconnect_max)
                continue
            break
        self.connection = connection
        # What this connection's listings find is announced if the bridge was told about the
        # domains before (an earlier connection, or an earlier run): then it may have missed
        # something.  A first run's first connection only brings the engine in line.
        self._announce, self._told = self._told, True
        if connection.refused:
            ctx.logger.debug(
                "%s does not offer %s",
                config.uri,
                ", ".join(event_id.name for event_id in connection.refused),
            )
        ctx.logger.info(
            "connected to %s (libvirt %s, %s): %d event IDs registered, keepalive %s",
            config.uri,
            await self._blocking(connection.version),
            "read-write" if config.allow_commands else "read-only",
            len(connection.registered),
            connection.keepalive,
        )
        self._spawn(self._look(connection, 0.0, first=True))
        for delay in config.look_again:
            self._spawn(self._look(connection, delay))

    async def _lost(self, closed: Closed) -> None:
        connection = self.connection
        if connection is None or closed.connection != connection.serial:
            return  # an old connection's late news
        self.ctx.logger.warning(
            "connection to %s closed (%s): reconnecting",
            self.config.uri,
            CLOSE_REASONS.get(closed.reason, f"reason {closed.reason}"),
        )
        self.connection = None
        self.reconnects += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await self._blocking(connection.close)
        await self._connect()

    async def _look(self, connection: Connection, delay: float, *, first: bool = False) -> None:
        """List every domain after ``delay`` seconds (for as long as ``connection`` lasts)."""
        await asyncio.sleep(delay)
        if self.connection is not connection or self.inbox is None:
            return
        seq = self.inbox.next_seq()  # events numbered from here on may be newer than the list
        try:
            domains = await self._blocking(connection.list_domains)
        except (self.libvirt.libvirtError, asyncio.TimeoutError, AttributeError) as exc:
            self.ctx.logger.debug("listing the domains failed: %s", _reason(exc))
            return
        self.inbox.put(Listing(seq, domains, first))

    async def _resync(self, listing: Listing) -> None:
        ctx = self.ctx
        for name in listing.domains:
            ctx.claim(name)  # ``virtbridge ctl NAME start`` reaches this source
        skip = frozenset(name for name, seq in self._last_seq.items() if seq > listing.seq)
        stamp = virtbridge.Timestamp.from_float(time.time())
        result = plan(self.view, listing.domains, skip=skip, stamp=stamp, announce=self._announce)
        if result.signals:
            for signal in result.signals:
                if isinstance(signal, virtbridge.ProcessLost):
                    ctx.logger.info(
                        "%s: its process ended while nobody was listening", signal.domain
                    )
            await ctx.submit_many(result.signals)
        if result.view != self.view:
            self.view = result.view
            self._view_changed = True

    # -- events -------------------------------------------------------------------------------

    async def _forward(self, raws: Sequence[Raw]) -> None:
        ctx = self.ctx
        decoded: list[tuple[Raw, virtbridge.Payload]] = []
        for raw in raws:
            try:
                decoded.append((raw, payload(raw.event_id, raw.arguments)))
            except Unrepresentable as exc:
                self.dropped += 1
                self._warn_once(f"{raw.event_id.name}: {exc}")
        last = {raw.name: index for index, (raw, _) in enumerate(decoded)}
        # Ask libvirt for the state after the last event of each domain (only for events
        # that say something about the state: definitions and device events do not).
        asks = {
            index: raw.domain
            for index, (raw, body) in enumerate(decoded)
            if last[raw.name] == index and states_after(raw.event_id, body)
        }
        states: dict[int, tuple[virtbridge.DomainState, int] | None] = {}
        if asks:
            try:
                read = await self._blocking(_reader(self.libvirt, list(asks.values())))
            except asyncio.TimeoutError:
                read = [None] * len(asks)
            states = dict(zip(asks, read, strict=True))
        signals: list[virtbridge.Signal] = []
        for index, (raw, body) in enumerate(decoded):
            pair = states.get(index)
            allowed = states_after(raw.event_id, body)
            state, reason = pair if pair is not None and pair[0] in allowed else (None, None)
            signals.append(
                virtbridge.LibvirtEvent(
                    domain=raw.name,
                    uuid=raw.uuid,
                    timestamp=virtbridge.Timestamp.from_float(raw.received),
                    event_id=raw.event_id,
                    payload=body,
                    id=raw.id,
                    state=state,
                    reason=reason,
                )
            )
            self._note(raw, body, state)
        for raw in raws:
            self._last_seq[raw.name] = raw.seq
        if len(self._last_seq) > 4 * BATCH:
            self._forget_old_seqs()
        if signals:
            await ctx.submit_many(signals)

    def _note(
        self, raw: Raw, body: virtbridge.Payload, state: virtbridge.DomainState | None
    ) -> None:
        """Keep :attr:`view` (the domains the bridge now believes active) up to date."""
        if not isinstance(body, virtbridge.Lifecycle) or body.event in _DEFINITION:
            return
        if body.detail >= 100:
            return
        active = self.view.active
        if body.event == _STOPPED:
            if active.pop(raw.name, None) is not None:
                self._view_changed = True
            return
        implied = state if state is not None else _IMPLIED.get(EventType(body.event))
        if implied is None:
            return
        seen = Seen(raw.uuid, raw.id, int(implied))
        if active.get(raw.name) != seen:
            active[raw.name] = seen
            self._view_changed = True

    def _forget_old_seqs(self) -> None:
        """Keep the "last event" bookkeeping to the domains the bridge tracks."""
        keep = set(self.view.active)
        self._last_seq = {name: seq for name, seq in self._last_seq.items() if name in keep}

    def _store_view(self) -> None:
        if self._view_changed:
            self.ctx.set_position(self.view.encode())
            self._view_changed = False

    def _warn_once(self, message: str) -> None:
        if message not in self._warned and len(self._warned) < 100:
            self._warned.add(message)
            self.ctx.logger.warning("event not forwarded: %s", message)

    # -- control ------------------------------------------------------------------------------

    def refuses(self, verb: str, domain: str) -> str | None:
        if not self.config.allow_commands:
            return (
                f"operation forbidden: domain {domain!r} is watched through a read-only libvirt "
                "connection (set allow_commands = true to let ctl verbs call libvirt)"
            )
        if self.connection is None:
            return f"cannot reach libvirt at {self.config.uri} (reconnecting)"
        return None

    async def start_domain(self, domain: str) -> str | None:
        """``virtbridge ctl DOMAIN start``: virDomainCreate.  libvirt's error, or None."""
        refusal = self.refuses("start", domain)
        if refusal is not None:
            return refusal
        return await self._call(domain, "create")

    async def perform(self, action: virtbridge.Action) -> None:
        if not self.config.allow_commands or self.connection is None:
            return
        method: str | None = None
        if isinstance(action, virtbridge.Kill):
            method = "destroy"  # ctl destroy, or a shutdown request that timed out
        elif isinstance(action, virtbridge.PowerButton):
            method = "reboot" if action.reboot else "shutdown"
        elif isinstance(action, virtbridge.MonitorCommand):
            method = COMMANDS.get(action.command)
        if method is None:
            return  # dumps, saves, resyncs, set-action: libvirt does these itself
        error = await self._call(action.domain, method)
        if error is not None:
            self.ctx.logger.warning("%s: %s failed: %s", action.domain, method, error)

    async def _call(self, domain: str, method: str) -> str | None:
        connection = self.connection
        if connection is None:
            return f"cannot reach libvirt at {self.config.uri} (reconnecting)"

        def call() -> None:
            getattr(connection.lookup(domain), method)()

        try:
            await self._blocking(call)
        except self.libvirt.libvirtError as exc:
            return str(exc)
        except asyncio.TimeoutError:
            return f"libvirt did not answer {method} within {self.config.call_timeout:g} s"
        return None

    # -- the rest of the Source contract ------------------------------------------------------

    async def check(self) -> str:
        libvirt = load()
        ensure_event_loop(libvirt)
        connection = Connection(libvirt, self.config.uri, read_only=True, inbox=None)
        try:
            await self._blocking(lambda: connection.open(0, 0))
            domains = await self._blocking(connection.list_domains)
            version = await self._blocking(connection.version)
        except libvirt.libvirtError as exc:
            raise RuntimeError(f"cannot connect to {self.config.uri}: {exc}") from None
        finally:
            await asyncio.to_thread(connection.close)
        return (
            f"connected to {self.config.uri} (libvirt {version}): {len(domains)} domains, "
            f"{len(connection.registered)} event IDs"
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(connection.close), 5)

    # -- helpers ------------------------------------------------------------------------------

    async def _blocking(self, function: Callable[[], T]) -> T:
        """Run a blocking libvirt call in a worker thread, bounded by ``call_timeout``."""
        return await asyncio.wait_for(asyncio.to_thread(function), self.config.call_timeout)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine, name=f"libvirt:{self.config.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_IMPLIED: dict[EventType, virtbridge.DomainState] = {
    EventType.STARTED: virtbridge.DomainState.RUNNING,
    EventType.SUSPENDED: virtbridge.DomainState.PAUSED,
    EventType.RESUMED: virtbridge.DomainState.RUNNING,
    EventType.SHUTDOWN: virtbridge.DomainState.SHUTDOWN,
    EventType.PMSUSPENDED: virtbridge.DomainState.PMSUSPENDED,
    EventType.CRASHED: virtbridge.DomainState.CRASHED,
}


def _reader(
    libvirt: Any, domains: list[Any]
) -> Callable[[], list[tuple[virtbridge.DomainState, int] | None]]:
    def read() -> list[tuple[virtbridge.DomainState, int] | None]:
        out: list[tuple[virtbridge.DomainState, int] | None] = []
        for dom in domains:
            try:
                state, reason = dom.state()
            except libvirt.libvirtError:
                out.append(None)  # gone (a transient domain that stopped, an undefine)
                continue
            out.append(state_pair(state, reason))
        return out

    return read


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


__all__ = ["LibvirtSource"]
