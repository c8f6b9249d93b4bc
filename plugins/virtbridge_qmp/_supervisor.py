"""The ``qemu`` source: launch and own one QEMU process the way libvirt does.

QEMU is started with ``-S -no-shutdown`` and a QMP socket of the source's own, in a private
directory (see ``_sockets``); only QEMU itself is believed on it (the listener's pid is
checked).  The engine's start intent is fed before ``cont``, so clients see libvirt's RESUMED
then STARTED.  Every action the engine asks for is carried out here: monitor commands (the
reboot action its policy needs, ``cont``, a fake reboot's ``system_reset`` + ``cont``),
SIGTERM after a finished shutdown (SIGKILL if QEMU is still there after ``kill_timeout``),
memory dumps for coredump-* crash policies, the save image, and ``query-status`` resyncs.

A QEMU left running by an earlier bridge is re-found through its pid file.  If its monitor
cannot be reached (hung, held by another client, its socket replaced), it is killed, as
libvirt kills on a failed reconnect "to remove danger of it ending up running twice", and
only once it is gone is the domain reported stopped and, with ``autostart``, started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Literal

import virtbridge

from ._errors import QmpError
from ._monitor import MonitorSession
from ._process import Emulator
from ._save import SaveError, save_image
from ._sockets import SocketAddress, SocketDirectory


class QemuConfig(virtbridge.PluginConfig, kw_only=True, forbid_unknown_fields=True):
    command: list[str]
    """QEMU's command line, without ``-S``, ``-no-shutdown`` or a QMP monitor (added here)."""
    uuid: str = ""
    on_poweroff: virtbridge.LifecycleAction | None = None
    on_reboot: virtbridge.LifecycleAction | None = None
    on_crash: virtbridge.LifecycleAction | None = None
    shutdown_timeout: float | None = None
    on_shutdown_timeout: virtbridge.ShutdownTimeoutAction | None = None
    kill_timeout: float = 10.0
    """Seconds between SIGTERM and SIGKILL."""
    autostart: bool = True
    on_bridge_stop: Literal["keep", "destroy"] = "keep"
    """keep: QEMU outlives the bridge and is re-found at the next start (as libvirt's guests
    outlive libvirtd); destroy: stop it with the bridge."""
    save_timeout: float = 600.0
    """Seconds a save may take; a migration still running then is cancelled and the domain
    resumed, as after any failed save."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: required: the domain's name")
        if not self.command:
            raise ValueError("command: must name the QEMU binary and its arguments")
        if shutil.which(self.command[0]) is None:
            raise ValueError(f"command: {self.command[0]!r} not found")
        problems = self.policy().apply(virtbridge.Policy()).problems_by_key()
        for key, problem in problems:
            raise ValueError(f"{key}: {problem}")
        if self.kill_timeout < 0:
            raise ValueError("kill_timeout: must be 0 or more seconds")
        if self.save_timeout <= 0:
            raise ValueError("save_timeout: must be positive")

    def policy(self) -> virtbridge.PolicyOverrides:
        return virtbridge.PolicyOverrides(
            on_poweroff=self.on_poweroff,
            on_reboot=self.on_reboot,
            on_crash=self.on_crash,
            shutdown_timeout=self.shutdown_timeout,
            on_shutdown_timeout=self.on_shutdown_timeout,
        )


class QemuSource(virtbridge.Source):
    def __init__(self, config: QemuConfig, ctx: virtbridge.SourceContext) -> None:
        self.config = config
        self.domain = config.name
        self.ctx = ctx
        self.emulator: Emulator | None = None
        self.session: MonitorSession | None = None
        self._sockets: SocketDirectory | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()

    # -- files ------------------------------------------------------------------------------

    def _dir(self) -> Path:
        return self.ctx.state_dir / "qemu" / virtbridge.escape_token(self.domain)

    def _socket(self) -> SocketAddress:
        """The monitor socket, in the private directory (checked again: raises OSError)."""
        if self._sockets is None:
            raise OSError("no private directory for QMP sockets")
        return self._sockets.address(self.domain)

    # -- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        ctx = self.ctx
        ctx.claim(self.domain)
        self._dir().mkdir(parents=True, exist_ok=True)
        # An unsafe directory stops the source here, with the reason, before any socket in it
        # is trusted; a QEMU already running is left alone (its pid file stays).
        self._sockets = SocketDirectory(ctx.state_dir / "q")
        # Under the start lock: a `ctl start` meanwhile waits, and then finds the re-found
        # QEMU running, or the unreachable one gone and the domain reported stopped.
        async with self._lock:
            adopted = Emulator.adopt(self._dir() / "qemu.pid")
            reattached = adopted is not None and await self._reattach(adopted)
            if not reattached:
                if adopted is not None:
                    await self._end_unreachable(adopted)
                # Not running (any more): if the engine still thinks it runs (restored state),
                # this stops it as libvirt's failed reconnect does (SHUTOFF/CRASHED).
                stamp = virtbridge.Timestamp.from_float(time.time())
                await ctx.submit(virtbridge.ProcessLost(domain=self.domain, timestamp=stamp))
        if reattached:
            assert adopted is not None
            ctx.logger.info("re-found QEMU (pid %d) for %r", adopted.pid, self.domain)
            await asyncio.Event().wait()
        if self.config.autostart:
            error = await self.start_domain(self.domain)
            if error:
                ctx.logger.error("cannot start %r: %s", self.domain, error)
        await asyncio.Event().wait()  # live until the bridge stops

    async def _reattach(self, emulator: Emulator) -> bool:
        try:
            address = self._socket()
        except OSError as exc:
            self.ctx.logger.error("%s: %s", self.domain, exc)
            return False
        session = MonitorSession(address.path, self.ctx, domain=self.domain, peer_pid=emulator.pid)
        try:
            await session.connect()
        except QmpError as exc:
            self.ctx.logger.warning("%s: cannot reattach: %s", self.domain, exc)
            return False
        self.emulator, self.session = emulator, session
        self._spawn(self._follow(session, emulator, fresh=False))
        return True

    async def _end_unreachable(self, emulator: Emulator) -> None:
        """qemuProcessReconnect's failure path: a QEMU whose monitor we cannot have is killed
        (SIGTERM, SIGKILL after ``kill_timeout``), never orphaned, and waited for, so nothing
        starts a second QEMU on its disks while it lives."""
        self.ctx.logger.error(
            "%s: the monitor of QEMU (pid %d) cannot be reached: killing it, as libvirt does "
            "when it cannot reconnect",
            self.domain,
            emulator.pid,
        )
        self.emulator = emulator  # a destroy meanwhile reaches it too
        self._kill(emulator, self.config.kill_timeout)
        await emulator.wait()

    async def start_domain(self, domain: str) -> str | None:
        """Launch QEMU and start the domain (``virtbridge ctl DOMAIN start``); an error message
        or None."""
        async with self._lock:
            if self.emulator is not None and self.emulator.alive:
                return "Requested operation is not valid: domain is already running"
            try:
                socket = self._socket()
                socket.real.unlink(missing_ok=True)
            except OSError as exc:
                return f"cannot start: {exc}"
            argv = [*self.config.command, "-S", "-no-shutdown", "-qmp", socket.qemu_option()]
            log = self._dir() / "qemu.log"
            try:
                emulator = Emulator.launch(
                    argv, log, self._dir() / "qemu.pid", pass_fds=socket.pass_fds
                )
            except OSError as exc:
                return f"cannot run {argv[0]}: {exc}"
            session = await self._connect(socket, emulator)
            if session is None:
                emulator.send(signal.SIGKILL)
                await emulator.wait()
                return f"QEMU did not start: {_tail(log)}"
            self.emulator, self.session = emulator, session
            await self._prepare(session)
            intent = virtbridge.Intent(
                domain=self.domain,
                intent=virtbridge.IntentKind.START,
                uuid=self.config.uuid or session.uuid,
                policy=self.config.policy(),
                timestamp=virtbridge.Timestamp.from_float(time.time()),
            )
            outcome = await self.ctx.submit(intent)  # the engine answers with the `cont`
            if outcome.error:
                emulator.send(signal.SIGKILL)
                await emulator.wait()
                return outcome.error
            self._spawn(self._follow(session, emulator, fresh=None))
            return None

    async def _connect(self, socket: SocketAddress, emulator: Emulator) -> MonitorSession | None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and await _still_running(emulator):
            session = MonitorSession(
                socket.path, self.ctx, domain=self.domain, peer_pid=emulator.pid
            )
            try:
                await session.connect()
                return session
            except QmpError:
                await asyncio.sleep(0.02)
        return None

    async def _prepare(self, session: MonitorSession) -> None:
        # QEMU's reboot action is not set here: it follows the domain's effective policy
        # ([bridge], [domains."x"] and this source's keys), so the engine asks for it with
        # the start (a set-action command before the ``cont``).
        with contextlib.suppress(QmpError):
            capabilities = [{"capability": "events", "state": True}]
            await session.execute("migrate-set-capabilities", {"capabilities": capabilities})

    async def _follow(
        self, session: MonitorSession, emulator: Emulator, *, fresh: bool | None
    ) -> None:
        """Stream the monitor's events, then report the exit."""
        try:
            await session.run(fresh=fresh)
        except QmpError as exc:  # e.g. QEMU gone before query-status answered: still reap it
            self.ctx.logger.warning("%s: monitor failed: %s", self.domain, exc)
        await session.close()
        ended = await emulator.wait()
        await self.ctx.submit(
            virtbridge.ProcessExit(
                domain=self.domain,
                status=ended.status,
                signal_number=ended.signal_number,
                timestamp=virtbridge.Timestamp.from_float(time.time()),
            )
        )

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine, name=f"qemu:{self.domain}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- actions -----------------------------------------------------------------------------

    async def perform(self, action: virtbridge.Action) -> None:
        emulator, session = self.emulator, self.session
        if isinstance(action, virtbridge.SaveState):
            # Answered in every case: the engine waits for the image or for its failure.
            live = emulator is not None and emulator.alive
            await self._save(session if live else None)
            return
        if emulator is None or not emulator.alive:
            return
        if isinstance(action, virtbridge.Kill):
            self._kill(emulator, min(action.grace, self.config.kill_timeout))
        elif session is None:
            return
        elif isinstance(action, virtbridge.MonitorCommand):
            try:
                await session.execute(action.command, action.arguments)
            except QmpError as exc:
                self.ctx.logger.warning("%s: %s failed: %s", self.domain, action.command, exc)
        elif isinstance(action, virtbridge.CoreDump):
            await self._dump(session)
        elif isinstance(action, virtbridge.Resync):
            await session.resync()

    def _kill(self, emulator: Emulator, grace: float) -> None:
        if grace <= 0:
            emulator.send(signal.SIGKILL)
            return
        if emulator.send(signal.SIGTERM):
            self._spawn(self._escalate(emulator, grace))

    async def _escalate(self, emulator: Emulator, grace: float) -> None:
        if not await emulator.wait_for(grace) and emulator.send(signal.SIGKILL):
            self.ctx.logger.warning(
                "%s: still running %.0f s after SIGTERM: SIGKILL", self.domain, grace
            )

    async def _dump(self, session: MonitorSession) -> None:
        path = self._dir() / "dumps" / f"{time.strftime('%Y%m%d-%H%M%S')}.core"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            await session.execute(
                "dump-guest-memory", {"paging": False, "protocol": f"file:{path}"}, timeout=300
            )
        except QmpError as exc:
            self.ctx.logger.error("%s: memory dump failed: %s", self.domain, exc)

    async def _save(self, session: MonitorSession | None) -> None:
        """Write ``save.img``; end QEMU only once the image is complete (its exit is the
        STOPPED/SAVED).  On failure the engine is told, and resumes the domain as libvirt
        does (RUNNING/SAVE_CANCELED)."""
        try:
            if session is None:
                raise SaveError("no QEMU monitor to save through")
            await save_image(session, self._dir() / "save.img", self.config.save_timeout)
        except SaveError as exc:
            self.ctx.logger.error("%s: save failed: %s", self.domain, exc)
            await self.ctx.submit(
                virtbridge.Intent(
                    domain=self.domain,
                    intent=virtbridge.IntentKind.SAVE_FAILED,
                    timestamp=virtbridge.Timestamp.from_float(time.time()),
                )
            )
            return
        try:
            await session.execute("quit")
        except QmpError as exc:
            self.ctx.logger.warning("%s: quit after the save: %s", self.domain, exc)

    async def close(self) -> None:
        emulator = self.emulator
        if self.config.on_bridge_stop == "destroy" and emulator is not None and emulator.alive:
            self._kill(emulator, self.config.kill_timeout)
            await emulator.wait_for(self.config.kill_timeout + 1)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        if self._sockets is not None:
            self._sockets.close()


async def _still_running(emulator: Emulator) -> bool:
    if emulator.popen is not None and emulator.popen.poll() is not None:
        return False
    await asyncio.sleep(0)
    return True


def _tail(log: Path, lines: int = 5) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no output"
    return " | ".join(text[-lines:]) or "no output"
