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
from pathlib import Path
from typing import Any

from virtbridge.config.load import Component, Config
from virtbridge.config.load import load as load_config
from virtbridge.engine.actions import Action, ScheduleTimer
from virtbridge.engine.engine import Engine, Outcome
from virtbridge.engine.events import Event
from virtbridge.engine.signals import Signal, Timer
from virtbridge.engine.time import Timestamp
from virtbridge.errors import ConfigError
from virtbridge.outbox.interface import Outbox
from virtbridge.plugin.api import Sink, SinkConfig
from virtbridge.runtime.contexts import (
    BridgeSinkContext,
    BridgeSourceContext,
    SourceRunner,
    make_outbox,
    private_dir,
)
from virtbridge.runtime.control import ControlService
from virtbridge.runtime.metrics import MetricsServer
from virtbridge.runtime.reload import plan_reload
from virtbridge.runtime.workers import STALLED, HookSink, SinkWorker

log = logging.getLogger("virtbridge")

STORE_BACKLOG = 4096
"""Events a source may get ahead of what is stored before it waits."""

HOOK_WORKER = "virtbridge_on_event"
"""The worker that calls the ``virtbridge_on_event`` hook (a reserved sink name)."""

_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]{1,40}")
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
        self._progressed = asyncio.Event()
        """Set when a sink's cursor moves (see _pace)."""
        self.sources: dict[str, SourceRunner] = {}
        self.workers: dict[str, SinkWorker] = {}
        self._sink_tasks: dict[str, asyncio.Task[None]] = {}
        self._owners: dict[str, SourceRunner] = {}
        self._claims: dict[str, SourceRunner] = {}
        self.taps: dict[str, list[list[Event]]] = {}
        self.control = ControlService(self)
        self.metrics: MetricsServer | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._timer_tasks: set[asyncio.Task[Outcome]] = set()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self.enrich = self.hooks.has("virtbridge_enrich_event")
        self.started_at = 0.0
        self.dropped_attributes = 0
        self._signalled: float | None = None
        """When the first SIGINT/SIGTERM came: every wait ends drain_timeout after it."""
        self._hurry = False
        """A second signal came: stop now."""
        self._output_closed = False

    @property
    def host(self) -> str:
        return self.config.bridge.host

    @property
    def state_dir(self) -> Path:
        return Path(self.config.bridge.state_dir)

    @property
    def config_path(self) -> Path | None:
        return None if self.config.path is None else Path(self.config.path)

    # -- feeding the engine -----------------------------------------------------------------

    async def submit(self, signal: Signal, runner: SourceRunner | None = None) -> Outcome:
        return (await self._feed([signal], runner))[0]

    async def submit_many(self, batch: Sequence[Signal], runner: SourceRunner | None = None) -> int:
        return sum(len(outcome.events) for outcome in await self._feed(batch, runner))

    async def _feed(self, batch: Sequence[Signal], runner: SourceRunner | None) -> list[Outcome]:
        """Feed signals to the engine, store what it said, then carry out its actions; a
        replay then waits for its sinks if they fell behind (see _pace)."""
        held: list[tuple[Action, SourceRunner | None]] = []
        out: list[tuple[Event, dict[str, Any] | None]] = []
        try:
            outcomes = [self._apply(signal, runner, held, out) for signal in batch]
        finally:
            # One append for the batch (in the engine's order), also when a signal failed:
            # what the engine said before it must not be lost.
            if out:
                self.outbox.append(out)
        await self._store()
        if held:
            await self._release(held)
        if runner is not None and not runner.live:
            await self._pace()
        return outcomes

    async def _pace(self) -> None:
        """A replay goes no faster than the slowest sink that is delivering: memory stays
        bounded, and a sink reads what it needs from memory instead of from the database
        (which costs it more, so that it would fall further behind).  Live sources never
        wait: what happens has to be taken when it happens."""
        progressed = self._progressed
        while True:
            now = time.monotonic()
            if not any(worker.holds_back(now) for worker in self.workers.values()):
                return
            progressed.clear()
            self.outbox.store_now()  # the sinks' cursors: no events will come to go with
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(progressed.wait(), STALLED)

    async def _release(self, held: list[tuple[Action, SourceRunner | None]]) -> None:
        """Carry out actions once the events and the domains' state that caused them are
        stored, as libvirt saves its status before it kills: a crash in between must find
        "shutting down" on disk with QEMU still there, never "running" with QEMU gone."""
        await self.outbox.flush()
        for action, runner in held:
            self._dispatch(action, runner)

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
            outbox.store_now()
            await asyncio.sleep(0)

    def _apply(
        self,
        signal: Signal,
        runner: SourceRunner | None,
        held: list[tuple[Action, SourceRunner | None]],
        out: list[tuple[Event, dict[str, Any] | None]],
    ) -> Outcome:
        """Feed one signal to the engine; its events go to ``out`` (appended to the outbox by
        the caller, once per batch), its actions to ``held``."""
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
            taps = self.taps.get(signal.domain)
            if taps:
                for tap in taps:
                    tap.extend(outcome.events)
            if self.enrich:
                out.extend([(event, self._attributes(event)) for event in outcome.events])
            else:
                out.extend([(event, None) for event in outcome.events])
        for action in outcome.actions:
            if isinstance(action, ScheduleTimer):
                self._dispatch(action, runner)  # arms an internal timer: nothing to undo
            elif runner is None or runner.live:
                held.append((action, runner))
            # else: a replay's: nobody carries it out (see _dispatch), nothing to wait for
        return outcome

    def _attributes(self, event: Event) -> dict[str, Any] | None:
        merged: dict[str, Any] = {}
        for plugin, attributes in self.hooks.each("virtbridge_enrich_event", event=event):
            if not isinstance(attributes, dict):
                continue
            for key, value in attributes.items():
                if (
                    isinstance(key, str)
                    and _ATTRIBUTE_NAME.fullmatch(key)
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

    def start_source(self, component: Component) -> None:
        runner = SourceRunner(component, self)
        runner.source = component.create_source(BridgeSourceContext(runner))
        runner.task = asyncio.create_task(self._run_source(runner), name=f"source:{runner.name}")
        runner.action_task = asyncio.create_task(
            self._run_actions(runner), name=f"actions:{runner.name}"
        )
        self.sources[runner.name] = runner

    async def _run_source(self, runner: SourceRunner) -> None:
        runner.state = "running"
        try:
            await runner.source.run()
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

    async def stop_source(self, runner: SourceRunner) -> None:
        for task in (runner.task, runner.action_task):
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(
            *(t for t in (runner.task, runner.action_task) if t is not None), return_exceptions=True
        )
        with contextlib.suppress(Exception):
            await runner.source.close()
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
            progressed=self._progressed,
        )
        self.workers[name] = worker
        self._sink_tasks[name] = asyncio.create_task(worker.run(), name=f"sink:{name}")

    def create_sink(self, component: Component) -> None:
        policy = component.config if isinstance(component.config, SinkConfig) else None
        sink = component.create_sink(BridgeSinkContext(self, component.name))
        self._start_sink(component.name, sink, policy=policy)

    async def stop_sink(
        self, name: str, timeout: float | None, *, while_moving: bool = False
    ) -> None:
        worker = self.workers[name]  # listed in status while it drains
        target = self.outbox.last_seq
        started = time.monotonic()
        if await self._drain(worker, target, timeout, while_moving=while_moving):
            log.info("sink %r: delivered %d of %d events", name, worker.cursor, target)
        elif not self._output_closed:
            kept = (
                "stored: delivered after the next start" if self.outbox.persists_engine else "lost"
            )
            log.warning(
                "sink %r stopped after %.1f s with %d events not delivered (%s)",
                name,
                time.monotonic() - started,
                target - worker.cursor,
                kept,
            )
        self.workers.pop(name, None)
        task = self._sink_tasks.pop(name)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # A sink that hangs in close() must not hold the bridge either.
        grace = 0.0 if self._hurry else max(self._remaining(), 1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.sink.close(), grace or 0.05)

    async def _drain(
        self, worker: SinkWorker, target: int, timeout: float | None, *, while_moving: bool
    ) -> bool:
        """Wait until ``worker`` has committed ``target``; False when given up.

        ``timeout`` counts from the worker's last progress with ``while_moving`` (a sink that
        delivers is waited for however long it takes, one that is stuck is given up on).  A
        stop signal caps every wait at ``drain_timeout`` from the signal; a second one, or a
        closed output, ends it at once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = worker.cursor
        while worker.cursor < target:
            if self._hurry or self._output_closed:
                return False
            now = time.monotonic()
            if while_moving and timeout is not None and worker.cursor != last:
                last, deadline = worker.cursor, now + timeout
            if deadline is not None and now >= deadline:
                return False
            if self._signalled is not None and self._remaining() <= 0:
                return False
            await asyncio.sleep(0.01)
        return True

    def _remaining(self) -> float:
        """Seconds left of the drain a stop signal allows (drain_timeout from the signal)."""
        if self._signalled is None:
            return self.config.bridge.drain_timeout
        return self._signalled + self.config.bridge.drain_timeout - time.monotonic()

    def output_closed(self) -> None:
        """A sink's output went away for good (stdout closed: ``| head``): stop at once,
        quietly, as a Unix tool does."""
        if not self._output_closed:
            log.debug("the output was closed: stopping")
        self._output_closed = True
        self._stop.set()

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
        if self.outbox.persists_engine or self.config.bridge.control_socket != "off":
            private_dir(Path(self.config.bridge.state_dir))
        await self.outbox.open()
        self._restore_engine()
        await self.control.start()
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
                self.create_sink(component)
            if self.hooks.has("virtbridge_on_event"):
                self._start_sink(HOOK_WORKER, HookSink(self.hooks), filtered=False)
            self._forget_old_readers()
            for component in self.config.sources:
                self.start_source(component)
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

    def _forget_old_readers(self) -> None:
        """A sink (or on_event worker) removed from the configuration between two runs would
        keep its stored cursor, and the outbox would keep every event after it for ever."""
        for name, cursor in sorted(self.outbox.readers().items()):
            if name not in self.workers:
                self.outbox.unregister_sink(name)
                log.info(
                    "forgot the cursor of sink %r (at event %d): it is no longer configured",
                    name,
                    cursor,
                )

    def _on_stop_signal(self, number: int) -> None:
        name = signals.Signals(number).name
        if self._signalled is not None:
            log.warning("second %s: stopping now", name)
            self._hurry = True
            for task in self._sink_tasks.values():
                task.cancel()
        else:
            self._signalled = time.monotonic()
            log.info(
                "%s received: stopping (sinks get %g s to deliver)",
                name,
                self.config.bridge.drain_timeout,
            )
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
            await self.stop_source(runner)
        await self.outbox.flush()
        # A finished replay waits for every sink, unless what a sink has not delivered yet is
        # stored durably anyway (then it is delivered at the next start); a stop request waits
        # drain_timeout at most.
        durable = self.outbox.persists_engine
        timeout = None if finished and not durable else self.config.bridge.drain_timeout
        if self._signalled is not None or self._output_closed:
            finished = False  # asked to stop: no waiting for sinks that still deliver
        for name in list(self.workers):
            await self.stop_sink(name, timeout, while_moving=finished)
        await self.outbox.close()
        if self.control.server is not None:
            await self.control.server.close()
        if self.metrics is not None:
            await self.metrics.close()
        return 1 if failed else 0

    async def reload(self) -> None:
        """Re-read the configuration file; apply what changed without losing events.  A
        broken file changes nothing."""
        path = self.config.path
        if path is None:
            log.warning("SIGHUP ignored: the bridge runs without a configuration file")
            return
        try:
            new = load_config(
                path,
                extra_plugins=self.config.extra_plugins,
                disabled_plugins=self.config.disabled_plugins,
            )
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        plan = plan_reload(self.config, new, self.sources, self.workers)
        self.config = new
        self.hooks = new.hooks
        self.enrich = self.hooks.has("virtbridge_enrich_event")
        self.engine.strict_libvirt = new.bridge.strict_libvirt
        self.engine.default_policy = new.bridge.policy()
        for name, policy in new.domains.items():
            self.engine.set_policy(name, policy)
        for name in plan.stop_sources:
            await self.stop_source(self.sources[name])
        for component in plan.start_sources:
            try:
                self.start_source(component)
            except ConfigError as exc:
                log.error("reload: %s", exc)
        for name in plan.stop_sinks:
            await self.stop_sink(name, new.bridge.drain_timeout)
            if name in plan.forget_sinks:
                self.outbox.unregister_sink(name)
        for component in plan.create_sinks:
            try:
                self.create_sink(component)
            except ConfigError as exc:
                log.error("reload: %s", exc)
        log.info("configuration reloaded from %s", path)

    def _restore_engine(self) -> None:
        saved = self.outbox.saved_domains
        if not saved:
            return
        next_id = self.outbox.saved_next_id
        try:
            self.engine.restore({"next_id": next_id, "domains": list(saved.values())})
        except ValueError as exc:
            log.error("cannot restore the engine's state, starting afresh: %s", exc)
            return
        log.info("restored %d domains from the outbox", len(saved))
        for timer in self.engine.pending_timers():  # e.g. a shutdown request's time-out
            self._schedule_timer(timer, None)

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


def _bad_attribute(key: object) -> ValueError:
    return ValueError(
        f"invalid attribute {key!r}: names are 1-40 lower-case letters or digits and not a "
        "CloudEvents core attribute; values are str, int or bool"
    )
