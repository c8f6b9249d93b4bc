"""A small libvirt-like supervisor that records everything a domain goes through as a trace.

It plays the part the engine's owner will play: it launches QEMU, performs intents over QMP the
way libvirt's qemu driver does, and reacts to QMP events the way libvirt does (SIGTERM after a
guest shutdown, ``system_reset`` + ``cont`` for a fake reboot, the on_crash action after a
panic). Every input the engine needs is appended to a :class:`Recording` in the order the
supervisor observed it: the intent line before the intent is performed, QMP events as they
arrive (with QEMU's own timestamp), ``eof`` when the monitor closes, ``exit`` when the process is
reaped. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.support.qemu import QemuProcess, connect_qmp, spawn_qemu

from virtbridge_qmp import QmpClient, QmpError, QmpEvent

__all__ = ["Domain", "Recording", "host_timestamp"]

Json = dict[str, Any]

WAIT: Final = 5.0  # bound for one step: a QMP reply, an event, a boot
DESTROY_GRACE: Final = 5.0  # SIGTERM, then SIGKILL after this long (libvirt's choice too)
SETTLE: Final = 0.05  # after a boot marker, let in-flight events arrive before the next step
_LIBVIRT_DEFAULTS: Final = {"on_poweroff": "destroy", "on_reboot": "restart", "on_crash": "destroy"}


def host_timestamp() -> Json:
    """Now, in QMP's timestamp format (for signals that QEMU does not timestamp)."""
    micros = time.time_ns() // 1000
    return {"seconds": micros // 1_000_000, "microseconds": micros % 1_000_000}


@dataclass
class Recording:
    """The lines of one trace file, in observation order, plus the command lines used."""

    scenario: str
    description: str
    lines: list[Json] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    muted: bool = False  # while "another supervisor" runs the domain (the reconnect scenario)

    def add(self, line: Json) -> None:
        if not self.muted:
            self.lines.append(line)


class Domain:
    """One domain: its policy, its current QEMU process and QMP connection, and its trace."""

    def __init__(self, name: str, variant: str, image: Path, workdir: Path, recording: Recording):
        self.name = name
        self.variant = variant
        self.image = image
        self.workdir = workdir
        self.recording = recording
        self.policy: dict[str, str] = dict(_LIBVIRT_DEFAULTS)
        self.vm: QemuProcess | None = None
        self.qmp: QmpClient | None = None
        self.events: list[QmpEvent] = []  # this process's events, for waiting on them
        self._cursor = 0
        self._eof = False
        self._exited = False
        self._news = asyncio.Event()  # set whenever an event, eof or exit arrives
        self._fake_reboot = False  # the next guest SHUTDOWN becomes system_reset + cont
        self._tasks: list[asyncio.Task[None]] = []
        self._reactor: asyncio.Task[None] | None = None
        self._reactions: asyncio.Queue[QmpEvent] = asyncio.Queue()

    # -- recording -------------------------------------------------------------------------

    def signal(self, kind: str, **fields: Any) -> None:
        line = {"domain": self.name, "signal": kind, **fields, "timestamp": host_timestamp()}
        self.recording.add(line)

    def intent(self, kind: str, **fields: Any) -> None:
        self.signal("intent", intent=kind, **fields)

    def _on_event(self, event: QmpEvent) -> None:
        line: Json = {"domain": self.name, "event": event.name}
        if "data" in event.raw:
            line["data"] = event.raw["data"]
        line["timestamp"] = event.raw.get("timestamp")
        self.recording.add(line)
        self.events.append(event)
        self._reactions.put_nowait(event)
        self._news.set()

    def _on_eof(self) -> None:
        self._eof = True
        self.signal("eof")
        self._news.set()

    async def _watch_exit(self, vm: QemuProcess) -> None:
        code = await vm.process.wait()
        self._exited = True
        if code < 0:
            self.signal("exit", signal_number=-code)
        else:
            self.signal("exit", status=code)
        self._news.set()

    # -- process ---------------------------------------------------------------------------

    async def launch(self, extra: tuple[str, ...] = ()) -> None:
        """Start QEMU paused (-S) and connect to its monitor, without any intent line."""
        argv = ["-name", self.name, "-S", *extra]
        self.vm = await spawn_qemu(self.image, self.workdir, argv, tag=self.name)
        self.recording.commands.append(self.vm.argv)
        self.events, self._cursor, self._eof, self._exited = [], 0, False, False
        self._tasks.append(asyncio.create_task(self._watch_exit(self.vm), name=f"{self.name} exit"))
        await self.connect()
        # libvirt turns migration events on for every domain it starts.
        events_on = {"capabilities": [{"capability": "events", "state": True}]}
        await self.command("migrate-set-capabilities", events_on)

    async def connect(self) -> None:
        assert self.vm is not None
        self.qmp = await connect_qmp(
            self.vm.qmp_path, timeout=WAIT, on_event=self._on_event, on_eof=self._on_eof
        )
        if self._reactor is None:
            self._reactor = asyncio.create_task(self._react(), name=f"{self.name} reactions")
            self._tasks.append(self._reactor)

    async def disconnect(self) -> None:
        """Drop the monitor connection (the supervisor goes away; QEMU keeps running)."""
        if self.qmp is not None:
            await self.qmp.close()
            self.qmp = None

    async def command(self, name: str, arguments: Json | None = None, timeout: float = WAIT) -> Any:
        assert self.qmp is not None
        return await self.qmp.execute(name, arguments, timeout=timeout)

    def kill(self, signum: int) -> None:
        """Send a signal to QEMU (from "outside" unless an intent line was recorded first)."""
        if self.vm is not None:
            self.vm.send_signal(signum)

    async def close(self) -> None:
        """Leave nothing behind: kill QEMU if it still runs, stop the tasks."""
        if self.vm is not None and self.vm.process.returncode is None:
            await self.vm.kill()
        await self.disconnect()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, QmpError):
                await task

    # -- waiting ---------------------------------------------------------------------------

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: {what} did not happen within {timeout} s")
            self._news.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._news.wait(), left)

    async def wait_event(self, name: str, timeout: float = WAIT, **data: Any) -> QmpEvent:
        """The next event called ``name`` (with these data fields) after the last one waited for."""
        found: list[QmpEvent] = []

        def seen() -> bool:
            for index in range(self._cursor, len(self.events)):
                event = self.events[index]
                if event.name == name and all(event.data.get(k) == v for k, v in data.items()):
                    self._cursor = index + 1
                    found.append(event)
                    return True
            return False

        await self.until(seen, f"event {name} {data or ''}", timeout)
        return found[0]

    async def wait_boot(self, count: int = 1, timeout: float = WAIT) -> None:
        """Wait for the guest's ``count``-th boot marker; then let late RESET events arrive."""
        assert self.vm is not None
        await self.vm.wait_for_boot(self.variant, count=count, timeout=timeout)
        await asyncio.sleep(SETTLE)

    def boots(self) -> int:
        assert self.vm is not None
        return self.vm.boots(self.variant)

    async def wait_gone(self, timeout: float = 2 * WAIT) -> None:
        """Wait until both the monitor's EOF and the process exit have been recorded."""
        await self.until(lambda: self._eof and self._exited, "eof and exit", timeout)

    # -- reactions (what the engine will ask its owner to do) ------------------------------

    async def _react(self) -> None:
        while True:
            event = await self._reactions.get()
            with contextlib.suppress(QmpError):  # QEMU went away: eof and exit tell the rest
                await self._react_to(event)

    async def _react_to(self, event: QmpEvent) -> None:
        if event.name == "SHUTDOWN" and event.data.get("guest"):
            powered_off = event.data.get("reason") == "guest-shutdown"
            restart = self._fake_reboot or (powered_off and self.policy["on_poweroff"] == "restart")
            if restart:
                self._fake_reboot = False
                await self.command("system_reset")
                await self.command("cont")
            else:
                self.kill(signal.SIGTERM)  # -no-shutdown left QEMU waiting to be told to go
        elif event.name == "GUEST_PANICKED":
            action = self.policy["on_crash"]
            if action.startswith("coredump-"):
                dump = self.workdir / f"{self.name}.dump"
                await self.command(
                    "dump-guest-memory", {"paging": False, "protocol": f"file:{dump}"}, timeout=30.0
                )
                dump.unlink(missing_ok=True)
            if action.endswith("restart"):
                await self.command("system_reset")
                await self.command("cont")
            elif action.endswith("destroy"):
                self.kill(signal.SIGTERM)

    # -- intents ---------------------------------------------------------------------------

    async def start(
        self, *, paused: bool = False, extra: tuple[str, ...] = (), policy: Json | None = None
    ) -> None:
        """``start`` (or ``start-paused``): launch with -S, record the intent, then ``cont``.

        ``policy`` (on_poweroff, on_reboot, on_crash, shutdown_timeout) goes on the intent line.
        """
        policy = policy or {}
        self.policy.update({k: v for k, v in policy.items() if k in _LIBVIRT_DEFAULTS})
        await self.launch(extra)
        self.intent("start-paused" if paused else "start", **policy)
        if not paused:
            await self.command("cont")
            await self.wait_event("RESUME")

    async def suspend(self) -> None:
        self.intent("suspend")
        await self.command("stop")
        await self.wait_event("STOP")

    async def resume(self) -> None:
        self.intent("resume")
        await self.command("cont")
        await self.wait_event("RESUME")

    async def reset(self) -> None:
        boots = self.boots()
        self.intent("reset")
        await self.command("system_reset")
        await self.wait_event("RESET", guest=False)
        await self.wait_boot(boots + 1)

    async def shutdown(self) -> None:
        self.intent("shutdown")
        await self.command("system_powerdown")
        await self.wait_event("POWERDOWN")

    async def reboot(self) -> None:
        """libvirt's fake reboot: ACPI power button, then reset + cont when the guest is off."""
        boots = self.boots()
        self.intent("reboot")
        self._fake_reboot = True
        await self.command("system_powerdown")
        await self.wait_event("RESUME")
        await self.wait_boot(boots + 1)

    async def destroy(self) -> None:
        assert self.vm is not None
        self.intent("destroy")
        self.kill(signal.SIGTERM)
        try:
            await self.until(lambda: self._exited, "exit after SIGTERM", DESTROY_GRACE)
        except TimeoutError:
            self.kill(signal.SIGKILL)
        await self.wait_gone()

    async def pm_wakeup(self) -> None:
        boots = self.boots()
        self.intent("pm-wakeup")
        await self.command("system_wakeup")
        await self.wait_event("WAKEUP")
        await self.wait_boot(boots + 1)

    async def save(self, image: Path) -> None:
        """``stop``, migrate the state into ``image``, then ``quit``."""
        self.intent("save")
        await self.command("stop")
        await self.wait_event("STOP")
        await self.command("migrate", {"uri": f"exec:cat > {image}"})
        await self.wait_event("MIGRATION", timeout=30.0, status="completed")
        status = await self.command("query-migrate")
        if status.get("status") != "completed":
            raise RuntimeError(f"{self.name}: save failed: {status}")
        await self.command("quit")
        await self.wait_gone()

    async def restore(self, image: Path) -> None:
        """A new QEMU that takes its state from ``image``, then ``cont``.

        Like libvirt, it uses ``-incoming defer`` and ``migrate-incoming`` after turning migration
        events on, so the incoming side's events are the same on every run.
        """
        self.intent("restore")
        await self.launch(("-incoming", "defer"))
        await self.command("migrate-incoming", {"uri": f"exec:cat {image}"})
        await self.wait_event("MIGRATION", timeout=30.0, status="completed")
        await self.command("cont")
        await self.wait_event("RESUME")
