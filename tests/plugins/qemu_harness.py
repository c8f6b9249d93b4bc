"""Shared machinery for the tests that prove the QMP sources on real QEMU guests.

* :class:`BridgeRun`: a bridge running in the test's event loop with a fresh state directory
  and a ``jsonl`` sink into a file, whose events are read back from that file (what a user of
  the sink would see), plus the control socket for ``ctl`` and domain states.
* :func:`describe` / :func:`squash`: each CloudEvent as one exact line with libvirt's numeric
  codes (``SHUTDOWN/GUEST [6/1] -> SHUTDOWN/UNKNOWN [4/0]``); runs of REBOOT folded into one,
  because SeaBIOS adds one or two resets of its own after every reset.
* :func:`until`: the only way these tests wait: for a condition, with a bound.

QEMU processes themselves (command lines, the test's own guests, the safety net that kills
whatever a test left behind) are in ``qemu_processes``.

Every wait is bounded; nothing here sleeps for a guessed time except :meth:`BridgeRun.settle`,
which waits for a quiet period (bounded too).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tests.plugins.qemu_processes import alive
from virtbridge import EventID
from virtbridge.config.load import load
from virtbridge.runtime.bridge import Bridge
from virtbridge.runtime.control_socket import request
from virtbridge_qmp import QemuSource

T = TypeVar("T")

WAIT = 10.0
"""Upper bound of any single wait (a TCG guest boots in ~0.1 s; this is for a loaded machine)."""

# The lines tests expect most often (state and reason after each event, with their codes).
BOOTED = [
    "RESUMED/UNPAUSED [4/0] -> RUNNING/BOOTED [1/1]",
    "STARTED/BOOTED [2/0] -> RUNNING/BOOTED [1/1]",
]
GUEST_SHUTDOWN = [
    "SHUTDOWN/GUEST [6/1] -> SHUTDOWN/UNKNOWN [4/0]",
    "STOPPED/SHUTDOWN [5/0] -> SHUTOFF/SHUTDOWN [5/1]",
]
DESTROYED = [
    "SHUTDOWN/HOST [6/2] -> SHUTDOWN/UNKNOWN [4/0]",
    "STOPPED/DESTROYED [5/1] -> SHUTOFF/DESTROYED [5/2]",
]
KILLED = ["STOPPED/FAILED [5/5] -> SHUTOFF/CRASHED [5/3]"]
HOST_SHUTDOWN = [
    "SHUTDOWN/HOST [6/2] -> SHUTDOWN/UNKNOWN [4/0]",
    "STOPPED/SHUTDOWN [5/0] -> SHUTOFF/SHUTDOWN [5/1]",
]
PAUSED = "SUSPENDED/PAUSED [3/0] -> PAUSED/UNKNOWN [3/0]"
"""QEMU stopped by someone else: libvirt does not know why."""
UNPAUSED = "RESUMED/UNPAUSED [4/0] -> RUNNING/UNPAUSED [1/5]"


def describe(data: dict[str, Any]) -> str:
    """One event (a CloudEvent's ``data``) as a line: event/detail and state/reason with codes."""
    kind = EventID(data["event_id"])
    if kind is EventID.LIFECYCLE:
        head = f"{data['event']}/{data['detail']} [{data['event_code']}/{data['detail_code']}]"
    elif kind is EventID.QEMU_MONITOR:
        head = f"QEMU_MONITOR {data['payload']['event']}"
    elif kind in (EventID.PMSUSPEND, EventID.PMWAKEUP):
        head = f"{kind.name}/{data['payload']['reason']}"
    else:
        head = kind.name
    state = f"{data['state']}/{data['reason']} [{data['state_code']}/{data['reason_code']}]"
    return f"{head} -> {state}"


def squash(lines: Iterable[str]) -> list[str]:
    """Fold each run of identical REBOOT lines into one ``REBOOT+`` line (SeaBIOS resets the
    machine once or twice more after every reset, so the count is not stable)."""
    out: list[str] = []
    for line in lines:
        if not line.startswith("REBOOT"):
            out.append(line)
            continue
        folded = "REBOOT+" + line[len("REBOOT") :]
        if not out or out[-1] != folded:
            out.append(folded)
    return out


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run a test's coroutine with an overall bound (pytest-asyncio is not used)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(
    condition: Callable[[], object],
    *,
    timeout: float = WAIT,
    what: str | Callable[[], str] = "condition",
) -> None:
    """Poll ``condition`` until it is true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = what() if callable(what) else what
            raise AssertionError(f"not met within {timeout} s: {shown}")
        await asyncio.sleep(0.01)


def _stacks() -> str:
    """Where every task of the running loop is waiting (for a stop that hangs)."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=30, file=out)
    return out.getvalue()


ATTACH_QUICK = {"reconnect_min": 0.05, "reconnect_max": 0.2, "scan_interval": 0.05}
"""Attach sources reconnect and rescan fast in tests: they wait for these, bounded."""


def attach(path: Path, **options: Any) -> dict[str, Any]:
    """A ``qmp`` (attach) source table for a socket path or a glob."""
    return {"type": "qmp", "path": str(path), **ATTACH_QUICK, **options}


class BridgeRun:
    """``async with BridgeRun(tmp_path, sources=[...]) as run:`` a running bridge.

    Its state directory is ``tmp/state`` (fresh, so control sockets never collide); every
    event goes to ``tmp/events.jsonl``. On exit the bridge is stopped (bounded) and every QEMU
    a ``qemu`` source of it started is killed, whatever happened in the test.
    """

    def __init__(
        self,
        tmp: Path,
        *,
        sources: list[dict[str, Any]],
        bridge: dict[str, Any] | None = None,
        name: str = "bridge",
    ) -> None:
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=False)
        self.state_dir = self.dir / "state"
        self.events_path = self.dir / "events.jsonl"
        self.data: dict[str, Any] = {
            "bridge": {"state_dir": str(self.state_dir), "drain_timeout": 2, **(bridge or {})},
            "sources": sources,
            "sinks": [{"type": "jsonl", "path": str(self.events_path)}],
        }
        self.bridge: Bridge | None = None
        self.task: asyncio.Task[int] | None = None
        self.qemu_sources: dict[str, QemuSource] = {}

    @property
    def control(self) -> Path:
        return self.state_dir / "control.sock"

    async def __aenter__(self) -> BridgeRun:
        self.bridge = Bridge(load(None, data=self.data))
        self.task = asyncio.create_task(self.bridge.run(handle_signals=False), name="bridge")
        wanted = len(self.data["sources"])
        await until(
            lambda: (
                self.task is not None
                and (self.task.done() or (self.control.exists() and len(self.sources) == wanted))
            ),
            what="the bridge to start",
        )
        if self.task.done():
            self.task.result()  # raise what stopped it
            raise AssertionError("the bridge stopped at once")
        for name, runner in self.sources.items():
            if isinstance(runner.source, QemuSource):
                self.qemu_sources[name] = runner.source
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> int | None:
        """Stop the bridge (bounded); kill what its ``qemu`` sources started. Its exit code."""
        code: int | None = None
        try:
            if self.bridge is not None and self.task is not None and not self.task.done():
                self.bridge.request_stop()
                try:
                    code = await asyncio.wait_for(asyncio.shield(self.task), 20)
                except asyncio.TimeoutError:
                    stuck = _stacks()
                    self.task.cancel()
                    with contextlib.suppress(BaseException):
                        await self.task
                    raise AssertionError(f"the bridge did not stop within 20 s:\n{stuck}") from None
            elif self.task is not None and self.task.done() and not self.task.cancelled():
                code = self.task.result()
        finally:
            for source in self.qemu_sources.values():
                emulator = source.emulator
                if emulator is not None and emulator.alive:
                    emulator.send(signal.SIGKILL)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(emulator.wait(), 5)
        return code

    # -- what the bridge did ------------------------------------------------------------------

    @property
    def sources(self) -> dict[str, Any]:
        assert self.bridge is not None
        return self.bridge.sources

    def attached(self, source: str = "qmp", count: int = 1) -> Callable[[], bool]:
        """A condition: the attach source ``source`` has ``count`` live monitor sessions."""

        def enough() -> bool:
            sessions = self.sources[source].source.sessions.values()
            live = [s for s in sessions if s.connected.is_set() and not s.client.at_eof]
            return len(live) >= count

        return enough

    def qemu(self, name: str) -> QemuSource:
        return self.qemu_sources[name]

    async def booted(self, domain: str = "vm") -> None:
        """Wait until ``domain`` was announced (STARTED/BOOTED)."""
        await self.wait_for(domain, BOOTED[-1])

    def running(self, domain: str = "vm") -> bool:
        """Whether the QEMU of the ``qemu`` source ``domain`` is alive."""
        emulator = self.qemu(domain).emulator
        return emulator is not None and emulator.alive and alive(emulator.pid)

    async def gone(self, domain: str = "vm") -> None:
        """Wait until the QEMU of the ``qemu`` source ``domain`` has exited and been reaped,
        and its pid file is gone."""
        emulator = self.qemu(domain).emulator
        assert emulator is not None
        await until(lambda: emulator.exit is not None, what=f"QEMU of {domain!r} to exit")
        assert not alive(emulator.pid)
        assert not emulator.pidfile.exists()

    def events(self, domain: str | None = None) -> list[dict[str, Any]]:
        """The ``data`` of every CloudEvent the jsonl sink has written so far (whole lines)."""
        try:
            text = self.events_path.read_text()
        except FileNotFoundError:
            return []
        complete = text[: text.rfind("\n") + 1]
        out = [json.loads(line)["data"] for line in complete.splitlines()]
        return [d for d in out if domain is None or d["domain"] == domain]

    def lines(self, domain: str | None = None) -> list[str]:
        return [describe(data) for data in self.events(domain)]

    def seen(self, domain: str, line: str, count: int = 1) -> Callable[[], bool]:
        """A condition: ``line`` appeared at least ``count`` times for ``domain``."""
        return lambda: self.lines(domain).count(line) >= count

    async def wait_for(
        self, domain: str, line: str, *, count: int = 1, timeout: float = WAIT
    ) -> None:
        """Wait until ``line`` was written ``count`` times for ``domain``."""
        await until(
            self.seen(domain, line, count),
            timeout=timeout,
            what=lambda: f"{line!r} x{count} for {domain!r}; written so far: {self.lines(domain)}",
        )

    async def settle(self, quiet: float = 0.3, timeout: float = WAIT) -> None:
        """Wait until no event was written for ``quiet`` seconds (SeaBIOS' late resets)."""
        deadline = time.monotonic() + timeout
        count, since = len(self.events()), time.monotonic()
        while time.monotonic() - since < quiet:
            if time.monotonic() > deadline:
                raise AssertionError(f"events never settled: {self.lines()}")
            await asyncio.sleep(0.02)
            now = len(self.events())
            if now != count:
                count, since = now, time.monotonic()

    # -- talking to it --------------------------------------------------------------------------

    async def ctl(self, domain: str, verb: str) -> dict[str, Any]:
        """``virtbridge ctl DOMAIN VERB`` through the control socket: the bridge's answer."""
        return await request(self.control, {"op": "ctl", "domain": domain, "verb": verb}, WAIT)

    async def state(self, domain: str) -> tuple[str, str, int] | None:
        """(state, reason, id) of ``domain`` as the control socket reports it; None if the
        bridge no longer tracks it (a stopped domain nobody defined)."""
        from virtbridge.engine.states import REASONS, DomainState

        answer = await request(self.control, {"op": "domains"}, WAIT)
        for view in answer["domains"]:
            if view["name"] == domain:
                state = DomainState(view["state"])
                return state.name, REASONS[state](view["reason"]).name, view["id"]
        return None
