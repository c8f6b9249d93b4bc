"""One QMP monitor connection feeding one domain's signals to the bridge.

Used by both source types: connect, learn the domain's name and UUID, report what
``query-status`` says (an ObservedStatus), then turn every QMP event into a signal, in order,
until the monitor closes (a MonitorEof).  Garbage from the peer is the client's business: it is
logged and counted there and never reaches the engine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import virtbridge

from ._client import EventMessage, QmpClient
from ._errors import QmpError

NO_UUID = "00000000-0000-0000-0000-000000000000"


def to_signal(domain: str, uuid: str | None, event: EventMessage) -> virtbridge.QmpEvent:
    stamp = event.timestamp
    return virtbridge.QmpEvent(
        domain=domain,
        uuid=uuid,
        event=event.name,
        data=event.data if "data" in event.raw else None,  # the client checked it is an object
        timestamp=virtbridge.Timestamp(stamp.seconds, stamp.microseconds),
    )


def domain_from_path(address: str | tuple[str, int]) -> str:
    """A name for a monitor nobody named: the socket file's name without its suffix."""
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return Path(address).stem or os.fspath(address)


class MonitorSession:
    """A connected monitor; :meth:`run` streams its events to the bridge until EOF."""

    def __init__(
        self,
        address: str | tuple[str, int],
        ctx: virtbridge.SourceContext | None,
        *,
        domain: str | None = None,
        logger: logging.Logger | None = None,
        line_limit: int = 1 << 20,
        peer_pid: int | None = None,
    ) -> None:
        self.address = address
        self.ctx = ctx
        self.domain = domain
        self.uuid: str | None = None
        self.log = logger or (
            ctx.logger if ctx is not None else logging.getLogger("virtbridge.qmp")
        )
        self.client = QmpClient(address, line_limit=line_limit, logger=self.log, peer_pid=peer_pid)
        self.connected = asyncio.Event()

    async def connect(self) -> None:
        await self.client.connect()
        if self.domain is None:
            self.domain = await self._name() or domain_from_path(self.address)
        self.uuid = await self._uuid()
        self.connected.set()

    async def _name(self) -> str | None:
        try:
            reply = await self.client.execute("query-name")
        except QmpError:
            return None
        name = reply.get("name") if isinstance(reply, dict) else None
        return name if isinstance(name, str) and name else None

    async def _uuid(self) -> str | None:
        try:
            reply = await self.client.execute("query-uuid")
        except QmpError:
            return None
        value = reply.get("UUID") if isinstance(reply, dict) else None
        return value if isinstance(value, str) and value != NO_UUID else None

    async def status(self, *, fresh: bool) -> virtbridge.ObservedStatus:
        reply = await self.client.execute("query-status")
        if not isinstance(reply, dict) or not isinstance(reply.get("status"), str):
            raise QmpError(f"query-status answered {reply!r}")
        assert self.domain is not None
        return virtbridge.ObservedStatus(
            domain=self.domain,
            uuid=self.uuid,
            status=reply["status"],
            running=bool(reply.get("running", reply["status"] == "running")),
            fresh=fresh,
            timestamp=virtbridge.Timestamp.from_float(_now()),
        )

    async def run(self, *, fresh: bool | None = None) -> None:
        """Report the status (unless ``fresh`` is None), then every event; return after the
        EOF has been submitted (or when the session is closed locally)."""
        assert self.domain is not None and self.ctx is not None
        if fresh is not None:
            await self.ctx.submit(await self.status(fresh=fresh))
        try:
            async for event in self.client.events():
                await self.ctx.submit(to_signal(self.domain, self.uuid, event))
        except QmpError:
            await self.ctx.submit(
                virtbridge.MonitorEof(
                    domain=self.domain,
                    uuid=self.uuid,
                    timestamp=virtbridge.Timestamp.from_float(_now()),
                )
            )

    async def resync(self) -> None:
        """Answer the engine's Resync: submit a fresh look at ``query-status``."""
        assert self.ctx is not None
        await self.ctx.submit(await self.status(fresh=False))

    async def execute(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        timeout: float = 10.0,
        *,
        fd: int | None = None,
    ) -> Any:
        return await self.client.execute(command, arguments, timeout=timeout, fd=fd)

    async def close(self) -> None:
        await self.client.close()

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.client.stats.__dict__)


def _now() -> float:
    return time.time()
