"""Shared machinery for the tests that prove the QMP sources on real QEMU guests.

* :class:`BridgeRun`: a bridge running in the test's event loop with a fresh state directory
  and a ``jsonl`` sink into a file, whose events are read back from that file (what a user of
  the sink would see), plus the control socket for ``ctl`` and domain states.
* :func:`describe` / :func:`squash`: each CloudEvent as one exact line with libvirt's numeric
  codes (``SHUTDOWN/GUEST [6/1] -> SHUTDOWN/UNKNOWN [4/0]``); runs of REBOOT folded into one,
  because SeaBIOS adds one or two resets of its own after every reset.
* :func:`until`: the only way these tests wait: for a condition, with a bound.
* :func:`kill_stray_qemu`: the safety net that SIGKILLs and reaps every QEMU this process
  started, whatever the test did.

Every wait is bounded; nothing here sleeps for a guessed time except :meth:`BridgeRun.settle`,
which waits for a quiet period (bounded too).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tests.support.qemu import QemuProcess, connect_qmp, spawn_qemu
from virtbridge import EventID
from virtbridge._config import load
from virtbridge._control import request
from virtbridge._runtime import Bridge
from virtbridge_qmp import QemuSource, QmpClient

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


def qemu_children() -> list[int]:
    """PIDs of the QEMU processes that are children of this (test) process."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == me and comm.startswith("qemu-system"):
            found.append(int(entry))
    return found


def kill_stray_qemu(timeout: float = 5.0) -> list[int]:
    """SIGKILL every QEMU child of this process and reap it; the PIDs that were still there."""
    strays = qemu_children()
    for pid in strays:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    for pid in strays:
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break  # reaped by its owner (a Popen or an asyncio child watcher)
            if done:
                break
            time.sleep(0.01)
    return strays


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _stacks() -> str:
    """Where every task of the running loop is waiting (for a stop that hangs)."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=30, file=out)
    return out.getvalue()


def guest_command(image: Path, serial: Path, *extra: str) -> list[str]:
    """QEMU's command line for a supervised guest (qemu-guests.md, Part 1), without the QMP
    monitor and ``-no-shutdown``, which the ``qemu`` source adds itself."""
    return [
        "qemu-system-x86_64",
        "-nodefaults",
        "-display", "none",
        "-machine", "pc,accel=tcg",
        "-m", "32",
        "-drive", f"file={image},format=raw,if=ide,snapshot=on",
        "-serial", f"file:{serial}",
        "-device", "pvpanic",
        *extra,
    ]  # fmt: skip


def supervised(
    images: dict[str, Path], tmp: Path, variant: str, name: str = "vm", **options: Any
) -> dict[str, Any]:
    """A ``qemu`` source table for ``variant``; the guest's serial log is ``tmp/<name>.serial``
    (see :func:`serial`)."""
    command = guest_command(images[variant], serial(tmp, name))
    return {"type": "qemu", "name": name, "command": command, **options}


def serial(tmp: Path, name: str = "vm") -> Path:
    return tmp / f"{name}.serial"


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

    def qemu(self, name: str) -> QemuSource:
        return self.qemu_sources[name]

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

    def seen_prefix(self, domain: str, prefix: str) -> Callable[[], bool]:
        return lambda: any(line.startswith(prefix) for line in self.lines(domain))

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
        from virtbridge._state import REASONS, DomainState

        answer = await request(self.control, {"op": "domains"}, WAIT)
        for view in answer["domains"]:
            if view["name"] == domain:
                state = DomainState(view["state"])
                return state.name, REASONS[state](view["reason"]).name, view["id"]
        return None


class Fleet:
    """QEMU processes a test starts itself (for attach mode), each with a second QMP monitor
    (``<tag>.mon``) the test drives it through; ``<tag>.qmp`` is the one the bridge attaches
    to. ``async with Fleet(images, directory) as fleet:``; on exit every monitor is closed and
    every process killed and reaped."""

    def __init__(self, images: dict[str, Path], directory: Path) -> None:
        self.images = images
        self.dir = directory
        self.processes: dict[str, QemuProcess] = {}
        self.monitors: dict[str, QmpClient] = {}
        self._old: list[QemuProcess] = []

    async def __aenter__(self) -> Fleet:
        self.dir.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for client in self.monitors.values():
            with contextlib.suppress(Exception):
                await client.close()
        for process in [*self.processes.values(), *self._old]:
            with contextlib.suppress(Exception):
                await process.kill()

    async def spawn(self, variant: str, tag: str, *extra: str) -> QemuProcess:
        """Start ``variant`` as ``tag`` (replacing an earlier process of that tag, which must
        have ended)."""
        if tag in self.processes:
            self._old.append(self.processes.pop(tag))
            old = self.monitors.pop(tag, None)
            if old is not None:
                await old.close()
        monitor = self.dir / f"{tag}.mon"
        monitor.unlink(missing_ok=True)
        process = await spawn_qemu(
            self.images[variant],
            self.dir,
            ["-qmp", f"unix:{monitor},server=on,wait=off", *extra],
            tag=tag,
        )
        self.processes[tag] = process
        return process

    async def monitor(self, tag: str) -> QmpClient:
        """The test's own monitor of ``tag`` (connected once, then reused)."""
        if tag not in self.monitors:
            self.monitors[tag] = await connect_qmp(self.dir / f"{tag}.mon")
        return self.monitors[tag]

    def __getitem__(self, tag: str) -> QemuProcess:
        return self.processes[tag]
