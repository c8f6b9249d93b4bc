"""The bridge at run time: sources → engine → outbox → one worker per sink.

Everything runs on one asyncio loop.  Sources submit signals; the engine's events are numbered
into the outbox and every sink worker reads them from its own cursor; the engine's actions go
to the source that owns the domain (in order, on a task of that source's own, so a source
reading its monitor is never blocked by an action that needs the same monitor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal as signals
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from virtbridge import _config
from virtbridge._config import Component, Config, ConfigError
from virtbridge._control import VERBS, ControlServer
from virtbridge._engine import Engine, Outcome
from virtbridge._engine_actions import Action, ScheduleTimer
from virtbridge._metrics import MetricsServer
from virtbridge._model import Event
from virtbridge._model_events import EventID
from virtbridge._model_time import Timestamp
from virtbridge._outbox import MemoryOutbox, Outbox
from virtbridge._plugin_api import Sink, SinkConfig, SinkContext, Source, SourceContext
from virtbridge._records import Record
from virtbridge._signals import Intent, IntentKind, Signal, Timer
from virtbridge._state import REASONS, DomainState, PausedReason
from virtbridge._wire import CloudEventBuilder
from virtbridge._workers import HookSink, SinkWorker

log = logging.getLogger("virtbridge")

STORE_BACKLOG = 4096
"""Events a source may get ahead of what is stored before it waits."""

SETTLING_VERBS = frozenset({"start", "suspend", "resume", "destroy"})
"""ctl verbs whose answer waits until the hypervisor has carried them out (up to 5 s)."""

HOOK_WORKER = "virtbridge_on_event"
"""The worker that calls the ``virtbridge_on_event`` hook (a reserved sink name)."""

_ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,40}$")
_RESERVED = {
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "sequence",
    "data_base64",
}


@dataclass
class SourceRunner:
    """A running source: its task, its action queue and what it has done."""

    component: Component
    source: Source
    bridge: Bridge
    task: asyncio.Task[None] | None = None
    actions: asyncio.Queue[Action] = field(default_factory=asyncio.Queue)
    action_task: asyncio.Task[None] | None = None
    signals: int = 0
    events: int = 0
    state: str = "starting"
    error: str = ""

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def live(self) -> bool:
        return getattr(self.source, "live", True)


class _SourceContext(SourceContext):
    def __init__(self, runner: SourceRunner) -> None:
        self.runner = runner
        self.name = runner.name
        self.logger = logging.getLogger(f"virtbridge.source.{runner.name}")
        self.host = runner.bridge.host
        self.state_dir = Path(runner.bridge.config.bridge.state_dir)

    def claim(self, domain: str) -> None:
        self.runner.bridge.claim(domain, self.runner)

    def position(self) -> str | None:
        return self.runner.bridge.outbox.position(self.name)

    def set_position(self, value: str) -> None:
        self.runner.bridge.outbox.set_position(self.name, value)

    async def submit(self, signal: Signal) -> Outcome:
        return await self.runner.bridge.submit(signal, self.runner)

    async def submit_many(self, signals_: Sequence[Signal]) -> int:
        return await self.runner.bridge.submit_many(signals_, self.runner)


class _SinkContext(SinkContext):
    def __init__(self, bridge: Bridge, name: str) -> None:
        self.bridge = bridge
        self.name = name
        self.host = bridge.host
        self.logger = logging.getLogger(f"virtbridge.sink.{name}")
        self._builder = CloudEventBuilder(f"virtbridge://{bridge.host}")

    def cloudevent(self, record: Record) -> dict[str, Any]:
        return self._builder.build(record.event, record.id, record.seq, record.attributes)

    def topic(self, record: Record, default: str) -> str:
        hooks = self.bridge.hooks
        if not hooks.has("virtbridge_event_topic"):
            return default
        chosen = hooks.first(
            "virtbridge_event_topic", event=record.event, sink=self.name, default=default
        )
        return chosen if isinstance(chosen, str) and chosen else default


class Bridge:
    """One bridge: build it from a :class:`Config`, then ``await bridge.run()``."""

    def __init__(self, config: Config, *, outbox: Outbox | None = None) -> None:
        self.config = config
        self.hooks = config.hooks
        self.engine = Engine(
            strict_libvirt=config.bridge.strict_libvirt,
            policy=config.bridge.policy(),
            monitor_events=config.bridge.monitor_events,
        )
        for name, policy in config.domains.items():
            self.engine.set_policy(name, policy)
        self.outbox = outbox or make_outbox(config)
        self._dirty: set[str] = set()
        self.sources: dict[str, SourceRunner] = {}
        self.workers: dict[str, SinkWorker] = {}
        self._sink_tasks: dict[str, asyncio.Task[None]] = {}
        self._owners: dict[str, SourceRunner] = {}
        self._claims: dict[str, SourceRunner] = {}
        self._taps: dict[str, list[list[Event]]] = {}
        self.control: ControlServer | None = None
        self.metrics: MetricsServer | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._timer_tasks: set[asyncio.Task[Outcome]] = set()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._enrich = self.hooks.has("virtbridge_enrich_event")
        self.started_at = 0.0
        self.dropped_attributes = 0

    @property
    def host(self) -> str:
        return self.config.bridge.host

    # -- feeding the engine -----------------------------------------------------------------

    async def submit(self, signal: Signal, runner: SourceRunner | None = None) -> Outcome:
        outcome = self._apply(signal, runner)
        await self._store()
        return outcome

    async def submit_many(self, batch: Sequence[Signal], runner: SourceRunner | None = None) -> int:
        events = 0
        for signal in batch:
            events += len(self._apply(signal, runner).events)
        await self._store()
        return events

    async def _store(self) -> None:
        """Hand the engine's records of the touched domains to the outbox, and wait until
        they, the events and the sources' positions are stored together."""
        outbox = self.outbox
        if self._dirty:
            if outbox.persists_engine:
                export = self.engine.export_domain
                for name in self._dirty:
                    outbox.save_domain(name, export(name))
                outbox.save_next_id(self.engine.next_id)
            self._dirty.clear()
        # Storing overlaps with the next batch; past a backlog, wait (backpressure).  The
        # order and atomicity of what is stored does not depend on waiting here.
        if outbox.backlog > STORE_BACKLOG:
            await outbox.flush()
        else:
            await asyncio.sleep(0)

    def _apply(self, signal: Signal, runner: SourceRunner | None) -> Outcome:
        outcome = self.engine.feed(signal)
        self._dirty.add(signal.domain)
        if runner is not None:
            runner.signals += 1
            runner.events += len(outcome.events)
            if signal.domain in self.engine:
                self._owners[signal.domain] = runner
            else:  # the domain is gone (a transient one stopped): forget it, keep memory flat
                self._owners.pop(signal.domain, None)
        if outcome.events:
            taps = self._taps.get(signal.domain)
            if taps:
                for tap in taps:
                    tap.extend(outcome.events)
            enrich = self._attributes if self._enrich else _no_attributes
            self.outbox.append([(event, enrich(event)) for event in outcome.events])
        for action in outcome.actions:
            self._dispatch(action, runner)
        return outcome

    def _attributes(self, event: Event) -> dict[str, Any] | None:
        merged: dict[str, Any] = {}
        for plugin, attributes in self.hooks.each("virtbridge_enrich_event", event=event):
            if not isinstance(attributes, dict):
                continue
            for key, value in attributes.items():
                if (
                    isinstance(key, str)
                    and _ATTRIBUTE_NAME.match(key)
                    and key not in _RESERVED
                    and isinstance(value, (str, int, bool))
                ):
                    merged[key] = value
                else:
                    self.dropped_attributes += 1
                    self.hooks.errors.record(plugin, "virtbridge_enrich_event", _bad_attribute(key))
        return merged or None

    def claim(self, domain: str, runner: SourceRunner) -> None:
        """``runner``'s source owns ``domain`` (its process), whether or not it is running."""
        self._claims[domain] = runner

    def owner(self, domain: str) -> SourceRunner | None:
        return self._owners.get(domain) or self._claims.get(domain)

    def _dispatch(self, action: Action, runner: SourceRunner | None) -> None:
        owner = runner if runner is not None else self.owner(action.domain)
        if isinstance(action, ScheduleTimer):
            if owner is None or owner.live:
                self._schedule_timer(action, owner)
            return
        if owner is not None and owner.live:
            owner.actions.put_nowait(action)

    def _schedule_timer(self, action: ScheduleTimer, owner: SourceRunner | None) -> None:
        loop = asyncio.get_running_loop()
        previous = self._timers.pop(action.domain, None)
        if previous is not None:
            previous.cancel()
        deadline = action.at.as_float() if action.at is not None else time.time() + action.delay
        delay = max(deadline - time.time(), 0.0)

        def fire() -> None:
            self._timers.pop(action.domain, None)
            now = max(time.time(), deadline)  # never earlier than the deadline it answers
            signal = Timer(domain=action.domain, timestamp=Timestamp.from_float(now))
            task = loop.create_task(self.submit(signal, owner), name=f"timer:{action.domain}")
            self._timer_tasks.add(task)
            task.add_done_callback(self._timer_tasks.discard)

        self._timers[action.domain] = loop.call_later(delay, fire)

    async def intent(self, signal: Signal) -> Outcome:
        """Feed a control-plane signal; actions go to the domain's owner."""
        return await self.submit(signal, None)

    # -- sources and sinks -----------------------------------------------------------------

    def _start_source(self, component: Component) -> None:
        runner = SourceRunner(component, component.create_source(), self)
        runner.task = asyncio.create_task(self._run_source(runner), name=f"source:{runner.name}")
        runner.action_task = asyncio.create_task(
            self._run_actions(runner), name=f"actions:{runner.name}"
        )
        self.sources[runner.name] = runner

    async def _run_source(self, runner: SourceRunner) -> None:
        runner.state = "running"
        try:
            await runner.source.run(_SourceContext(runner))
        except asyncio.CancelledError:
            runner.state = "stopped"
            raise
        except Exception as exc:
            runner.state = "failed"
            runner.error = f"{type(exc).__name__}: {exc}"
            log.error("source %r failed: %s", runner.name, runner.error, exc_info=exc)
        else:
            runner.state = "done"
            log.debug("source %r finished", runner.name)
        finally:
            if self._all_sources_finished():
                self._stop.set()

    def _all_sources_finished(self) -> bool:
        return bool(self.sources) and all(
            not r.live and r.state in ("done", "failed") for r in self.sources.values()
        )

    async def _run_actions(self, runner: SourceRunner) -> None:
        while True:
            action = await runner.actions.get()
            try:
                await runner.source.perform(action)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("source %r could not perform %r: %s", runner.name, action, exc)

    async def _stop_source(self, runner: SourceRunner) -> None:
        for task in (runner.task, runner.action_task):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(
            *(t for t in (runner.task, runner.action_task) if t is not None), return_exceptions=True
        )
        with contextlib.suppress(Exception):
            await runner.source.aclose()
        self.sources.pop(runner.name, None)

    def _start_sink(
        self, name: str, sink: Sink, *, filtered: bool = True, policy: SinkConfig | None = None
    ) -> None:
        worker = SinkWorker(
            name,
            sink,
            self.outbox,
            self.hooks,
            logging.getLogger(f"virtbridge.sink.{name}"),
            filtered=filtered,
            policy=policy or SinkConfig(type="?"),
        )
        self.workers[name] = worker
        self._sink_tasks[name] = asyncio.create_task(worker.run(), name=f"sink:{name}")

    def _create_sink(self, component: Component) -> None:
        policy = component.config if isinstance(component.config, SinkConfig) else None
        sink = component.create_sink(_SinkContext(self, component.name))
        self._start_sink(component.name, sink, policy=policy)

    async def _stop_sink(
        self, name: str, timeout: float | None, *, while_moving: bool = False
    ) -> None:
        worker = self.workers.pop(name)
        target = self.outbox.last_seq
        drained = await worker.drained(target, timeout, while_moving=while_moving)
        if drained:
            log.info("sink %r: delivered %d of %d events", name, worker.cursor, target)
        else:
            kept = (
                "stored: delivered after the next start" if self.outbox.persists_engine else "lost"
            )
            log.warning(
                "sink %r stopped after %.1f s with %d events not delivered (%s)",
                name,
                timeout or 0,
                target - worker.cursor,
                kept,
            )
        task = self._sink_tasks.pop(name)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with contextlib.suppress(Exception):
            await worker.sink.close()

    # -- the main loop ---------------------------------------------------------------------

    async def run(self, *, stop: Awaitable[Any] | None = None, handle_signals: bool = True) -> int:
        """Run until SIGINT/SIGTERM, ``stop`` completes, or every (replay) source is done."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for number in (signals.SIGINT, signals.SIGTERM):
                loop.add_signal_handler(number, self._on_stop_signal, number)
            loop.add_signal_handler(signals.SIGHUP, self._reload.set)
        stop_task = asyncio.ensure_future(stop) if stop is not None else None
        if stop_task is not None:
            stop_task.add_done_callback(lambda _: self._stop.set())
        await self.outbox.open()
        self._restore_engine()
        await self._start_control()
        if self.config.bridge.metrics:
            self.metrics = MetricsServer(self.config.bridge.metrics, self.status)
            try:
                await self.metrics.start()
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve metrics: {exc}", file=self.config.path, key="bridge.metrics"
                ) from None
        self.started_at = time.time()
        try:
            for component in self.config.sinks:
                self._create_sink(component)
            if self.hooks.has("virtbridge_on_event"):
                self._start_sink(HOOK_WORKER, HookSink(self.hooks), filtered=False)
            for component in self.config.sources:
                self._start_source(component)
            self.hooks.each("virtbridge_bridge_started", bridge=self)
            if not self.config.sources:
                log.warning(
                    "no sources configured: nothing will happen until one is added (SIGHUP)"
                )
            while not self._stop.is_set():
                reload_wait = asyncio.ensure_future(self._reload.wait())
                stop_wait = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait({reload_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                reload_wait.cancel()
                stop_wait.cancel()
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    await self.reload()
            return await self._shutdown()
        finally:
            if handle_signals:
                for number in (signals.SIGINT, signals.SIGTERM, signals.SIGHUP):
                    loop.remove_signal_handler(number)
            if stop_task is not None and not stop_task.done():
                stop_task.cancel()

    def _on_stop_signal(self, number: int) -> None:
        if self._stop.is_set():
            log.warning("second %s: stopping now", signals.Signals(number).name)
            for task in self._sink_tasks.values():
                task.cancel()
        log.info("%s received: stopping", signals.Signals(number).name)
        self._stop.set()

    def request_stop(self) -> None:
        self._stop.set()

    async def _shutdown(self) -> int:
        finished = self._all_sources_finished()
        failed = [r.name for r in self.sources.values() if r.state == "failed"]
        self.hooks.each("virtbridge_bridge_stopping", bridge=self)
        for timer in self._timers.values():
            timer.cancel()
        for runner in list(self.sources.values()):
            await self._stop_source(runner)
        await self.outbox.flush()
        # A finished replay waits for every sink, unless what a sink has not delivered yet is
        # stored durably anyway (then it is delivered at the next start); a stop request waits
        # drain_timeout at most.
        durable = self.outbox.persists_engine
        timeout = None if finished and not durable else self.config.bridge.drain_timeout
        for name in list(self.workers):
            await self._stop_sink(name, timeout, while_moving=finished)
        await self.outbox.close()
        if self.control is not None:
            await self.control.close()
        if self.metrics is not None:
            await self.metrics.close()
        return 1 if failed else 0

    async def reload(self) -> None:
        """Re-read the configuration file; apply what changed without losing events."""
        path = self.config.path
        if path is None:
            log.warning("SIGHUP ignored: the bridge runs without a configuration file")
            return
        try:
            new = _config.load(path, extra_plugins=self.config.extra_plugins)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        old = self.config
        self.config = new
        self.hooks = new.hooks
        self._enrich = self.hooks.has("virtbridge_enrich_event")
        self.engine.strict_libvirt = new.bridge.strict_libvirt
        self.engine.default_policy = new.bridge.policy()
        for name, policy in new.domains.items():
            self.engine.set_policy(name, policy)
        old_sources = {c.name: c for c in old.sources}
        new_sources = {c.name: c for c in new.sources}
        for name, component in old_sources.items():
            if name in self.sources and (
                name not in new_sources or new_sources[name].table != component.table
            ):
                await self._stop_source(self.sources[name])
        for name, component in new_sources.items():
            if name not in self.sources:
                try:
                    self._start_source(component)
                except ConfigError as exc:
                    log.error("reload: %s", exc)
        old_sinks = {c.name: c for c in old.sinks}
        new_sinks = {c.name: c for c in new.sinks}
        for name, component in old_sinks.items():
            if name in self.workers and (
                name not in new_sinks or new_sinks[name].table != component.table
            ):
                await self._stop_sink(name, self.config.bridge.drain_timeout)
                if name not in new_sinks:
                    self.outbox.unregister_sink(name)
        for name, component in new_sinks.items():
            if name not in self.workers:
                try:
                    self._create_sink(component)
                except ConfigError as exc:
                    log.error("reload: %s", exc)
        log.info("configuration reloaded from %s", path)

    def _restore_engine(self) -> None:
        saved = getattr(self.outbox, "saved_domains", None)
        if not saved:
            return
        next_id = getattr(self.outbox, "saved_next_id", 1)
        try:
            self.engine.restore({"next_id": next_id, "domains": list(saved.values())})
        except ValueError as exc:
            log.error("cannot restore the engine's state, starting afresh: %s", exc)
            return
        log.info("restored %d domains from the outbox", len(saved))

    # -- control ------------------------------------------------------------------------------

    def control_path(self) -> Path | None:
        setting = self.config.bridge.control_socket
        if setting == "off":
            return None
        return Path(setting) if setting else Path(self.config.bridge.state_dir) / "control.sock"

    async def _start_control(self) -> None:
        path = self.control_path()
        if path is None:
            return
        server = ControlServer(path, self._control_request)
        try:
            await server.start()
        except OSError as exc:
            log.warning(
                "no control socket (virtbridge ctl/status will not reach this bridge): %s", exc
            )
            return
        self.control = server

    async def _control_request(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"ok": True, "status": self.status()}
        if op == "domains":
            views = [self.engine.view(name) for name in self.engine.names()]
            return {"ok": True, "domains": [msgspec.to_builtins(v) for v in views if v is not None]}
        if op != "ctl":
            return {"ok": False, "error": f"unknown operation {op!r}"}
        domain, verb = request.get("domain"), request.get("verb")
        if not isinstance(domain, str) or not domain:
            return {"ok": False, "error": "missing domain"}
        if verb not in VERBS:
            return {"ok": False, "error": f"unknown verb {verb!r} (one of: {', '.join(VERBS)})"}
        seen: list[Event] = []
        self._taps.setdefault(domain, []).append(seen)
        try:
            error, acting = await self._ctl(domain, verb)
            if error is None and acting and verb in SETTLING_VERBS:
                await self._settle(domain, seen)
        finally:
            self._taps[domain].remove(seen)
            if not self._taps[domain]:
                del self._taps[domain]
        return {
            "ok": error is None,
            "error": error,
            "events": [event.describe() for event in seen],
            "state": self._state_of(domain),
        }

    async def _ctl(self, domain: str, verb: str) -> tuple[str | None, bool]:
        """Carry out a ctl verb: libvirt's error or None, and whether the hypervisor was asked
        to act (a no-op, such as suspending a paused domain, has no answer to wait for)."""
        if verb == "start":
            owner = self.owner(domain)
            starter = getattr(owner.source, "start_domain", None) if owner is not None else None
            if starter is None:
                return f"no source here can start domain {domain!r}", False
            error: str | None = await starter(domain)
            return error, True
        owner = self.owner(domain)
        if domain not in self.engine and owner is not None:
            return "Requested operation is not valid: domain is not running", False
        refusal = owner.source.refuses(verb, domain) if owner is not None else None
        if refusal is not None:
            return refusal, False
        stamp = Timestamp.from_float(time.time())
        outcome = await self.intent(Intent(domain=domain, intent=IntentKind(verb), timestamp=stamp))
        return outcome.error, bool(outcome.actions)

    async def _settle(self, domain: str, seen: list[Event], timeout: float = 5.0) -> None:
        """Wait (a little) for the hypervisor's answer, as libvirt's synchronous API does:
        until an event shows the domain left a transitional state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.engine.view(domain)
            transitional = view is not None and (
                view.state is DomainState.SHUTDOWN
                or (view.state is DomainState.PAUSED and view.reason == PausedReason.STARTING_UP)
            )
            if seen and not transitional and any(e.kind is EventID.LIFECYCLE for e in seen):
                return
            await asyncio.sleep(0.01)

    def _state_of(self, domain: str) -> str | None:
        view = self.engine.view(domain)
        if view is None:
            return None
        return f"{view.state.name}/{REASONS[view.state](view.reason).name}"

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "uptime": round(time.time() - self.started_at, 3) if self.started_at else 0,
            "domains": len(self.engine),
            "outbox": self.outbox.status(),
            "sources": {
                name: {"state": r.state, "signals": r.signals, "events": r.events, "error": r.error}
                for name, r in self.sources.items()
            },
            "sinks": {name: worker.status() for name, worker in self.workers.items()},
            "plugin_errors": self.hooks.errors.as_dict(),
            "metrics": f"{self.metrics.host}:{self.metrics.port}" if self.metrics else None,
        }


def make_outbox(config: Config) -> Outbox:
    settings = config.bridge
    if settings.outbox == "memory":
        return MemoryOutbox()
    from virtbridge._outbox_sqlite import SqliteOutbox

    return SqliteOutbox(
        Path(settings.state_dir) / "outbox.sqlite3",
        window=settings.outbox_window,
        max_events=settings.outbox_max_events,
        synchronous=settings.outbox_sync.upper(),
    )


def _no_attributes(event: Event) -> None:
    return None


def _bad_attribute(key: object) -> ValueError:
    return ValueError(
        f"invalid attribute {key!r}: names are 1-40 lower-case letters or digits and not a "
        "CloudEvents core attribute; values are str, int or bool"
    )
