"""The ``qmp`` source: attach to QMP sockets someone else manages (Proxmox-style).

It observes and never acts on a process it does not own: no signal is ever sent.  With
``allow_commands = true`` it may send the monitor commands the engine or ``virtbridge ctl``
asks for (``system_powerdown``, ``stop``, ``cont``, ``system_reset``, ``system_wakeup``).
"""

from __future__ import annotations

import asyncio
import glob
import os
import random
import time
from pathlib import Path

import virtbridge

from ._errors import QmpError
from ._monitor import MonitorSession

SAFE_COMMANDS = frozenset({"system_powerdown", "stop", "cont", "system_reset", "system_wakeup"})


class QmpAttachConfig(virtbridge.PluginConfig, kw_only=True, forbid_unknown_fields=True):
    path: str = ""
    """A unix socket path, or a glob (``/var/run/qemu-server/*.qmp``) that is watched."""
    address: str = ""
    """``host:port`` of a TCP monitor, instead of ``path``."""
    domain: str = ""
    """The domain's name (one socket only); default: QEMU's ``-name``, else the file name."""
    scan_interval: float = 2.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    allow_commands: bool = False
    line_limit: int = 1 << 20

    def __post_init__(self) -> None:
        if bool(self.path) == bool(self.address):
            raise ValueError("path: give exactly one of path (unix socket or glob) and address")
        if self.address:
            host, _, port = self.address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError("address: must be host:port")
        if self.domain and self.path and glob.has_magic(self.path):
            raise ValueError("domain: only for a single socket, not a glob")
        if not 0 < self.reconnect_min <= self.reconnect_max:
            raise ValueError("reconnect_min: must be positive and at most reconnect_max")
        if self.scan_interval <= 0:
            raise ValueError("scan_interval: must be positive")

    @property
    def watched(self) -> bool:
        return bool(self.path) and glob.has_magic(os.path.expanduser(self.path))


class QmpAttachSource(virtbridge.Source):
    def __init__(self, config: QmpAttachConfig, ctx: virtbridge.SourceContext) -> None:
        self.config = config
        self.ctx = ctx
        self.sessions: dict[str, MonitorSession] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}

    async def check(self) -> str:
        if self.config.watched:
            found = sorted(glob.glob(os.path.expanduser(self.config.path)))
            return f"{len(found)} monitor sockets match {self.config.path!r}"
        session = MonitorSession(self._address(self.config.path), None)
        try:
            await session.connect()
            status = await session.status(fresh=False)
        finally:
            await session.close()
        return f"connected: domain {session.domain!r} is {status.status}"

    def _address(self, path: str) -> str | tuple[str, int]:
        if self.config.address:
            host, _, port = self.config.address.rpartition(":")
            return (host.strip("[]"), int(port))
        return os.path.expanduser(path)

    async def run(self) -> None:
        ctx = self.ctx
        if not self.config.watched:
            key = self.config.address or os.path.expanduser(self.config.path)
            await self._watch(ctx, key, initial=True)
            return
        pattern = os.path.expanduser(self.config.path)
        first = True
        try:
            while True:
                present = set(glob.glob(pattern))
                for path in sorted(present):
                    task = self._watchers.get(path)
                    if task is None or task.done():
                        self._watchers[path] = asyncio.create_task(
                            self._watch(ctx, path, initial=first), name=f"qmp-watch:{path}"
                        )
                # A watcher ends by itself once its socket has vanished (after reporting the
                # EOF of a session it had); cancelling it here could lose that EOF.
                for path in [path for path, task in self._watchers.items() if task.done()]:
                    del self._watchers[path]
                first = False
                await asyncio.sleep(self.config.scan_interval)
        finally:
            for task in self._watchers.values():
                task.cancel()
            await asyncio.gather(*self._watchers.values(), return_exceptions=True)

    async def _watch(self, ctx: virtbridge.SourceContext, key: str, *, initial: bool) -> None:
        """Keep one monitor connected: reconnect with jittered backoff after every EOF."""
        delay = self.config.reconnect_min
        fresh = not initial  # sockets found at start-up are reconnects; later ones are new VMs
        while True:
            session = MonitorSession(
                self._address(key),
                ctx,
                domain=self.config.domain or None,
                line_limit=self.config.line_limit,
            )
            try:
                await session.connect()
            except QmpError as exc:
                ctx.logger.debug("monitor %s: %s", key, exc)
                if initial and self.config.domain:
                    # A monitor we knew (restored state) is gone: the VM died while the bridge
                    # was away, as libvirt's reconnect finds it.  The engine ignores this for
                    # a domain it thinks is not running.
                    initial = False
                    stamp = virtbridge.Timestamp.from_float(time.time())
                    await ctx.submit(
                        virtbridge.ProcessLost(domain=self.config.domain, timestamp=stamp)
                    )
                if self.config.watched and not Path(key).exists():
                    return  # the VM is gone for good: stop retrying its socket
                if isinstance(exc.__cause__, (FileNotFoundError, ConnectionRefusedError)):
                    fresh = True  # nobody listens: whoever answers later started after us
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, self.config.reconnect_max)
                continue
            delay = self.config.reconnect_min
            self.sessions[key] = session
            assert session.domain is not None
            ctx.claim(session.domain)
            try:
                await session.run(fresh=fresh)
            except QmpError as exc:
                ctx.logger.warning("monitor %s failed: %s", key, exc)
            finally:
                await session.close()
            fresh = True  # whatever comes back on this socket is a new process
            if not self.config.address and not Path(key).exists() and self.config.watched:
                return

    def _session_for(self, domain: str) -> MonitorSession | None:
        for session in self.sessions.values():
            if session.domain == domain and self._connected_session(session):
                return session
        return None

    @staticmethod
    def _connected_session(session: MonitorSession) -> bool:
        return session.connected.is_set() and not session.client.at_eof

    def refuses(self, verb: str, domain: str) -> str | None:
        if verb == "destroy":
            return (
                f"operation forbidden: domain {domain!r} is watched by a qmp source, which never "
                "kills a process it does not own"
            )
        if not self.config.allow_commands:
            return (
                f"operation forbidden: domain {domain!r} is watched by a qmp source that only "
                "observes (set allow_commands = true to let it send monitor commands)"
            )
        return None

    async def perform(self, action: virtbridge.Action) -> None:
        session = self._session_for(action.domain)
        if session is None:
            return
        if isinstance(action, virtbridge.Resync):
            await session.resync()
        elif (
            isinstance(action, virtbridge.MonitorCommand)
            and self.config.allow_commands
            and action.command in SAFE_COMMANDS
        ):
            await session.execute(action.command, action.arguments)
        # Kill, CoreDump, SaveState, and commands not allowed: an attach source only observes.

    async def close(self) -> None:
        for session in self.sessions.values():
            await session.close()
