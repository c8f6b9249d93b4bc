"""``virtbridge record --qmp SOCKET``: a live monitor, read as the trace it would make.

Yields the header (QEMU's version), the monitor's status when recording began, then every
event as QEMU sent it, and an EOF when the monitor goes away.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import virtbridge

from ._errors import QmpError
from ._monitor import MonitorSession, to_signal


def address(text: str) -> str | tuple[str, int]:
    """A unix socket path, or ``host:port`` for a TCP monitor."""
    host, _, port = text.rpartition(":")
    if host and port.isdigit() and "/" not in text:
        return (host.strip("[]"), int(port))
    return text


async def recorded(where: str, domain: str | None) -> AsyncIterator[str | virtbridge.Signal]:
    session = MonitorSession(address(where), None, domain=domain)
    await session.connect()  # QmpError: its message names the socket and what went wrong
    try:
        assert session.domain is not None
        name = session.domain
        greeting = session.client.greeting or {}
        version = greeting.get("QMP", {}).get("version", {}).get("qemu", {})
        if version:
            yield "QEMU " + ".".join(str(version.get(p)) for p in ("major", "minor", "micro"))
        yield await session.status(fresh=False)
        try:
            async for event in session.client.events():
                yield to_signal(name, None, event)
        except QmpError:
            stamp = virtbridge.Timestamp.from_float(time.time())
            yield virtbridge.MonitorEof(domain=name, timestamp=stamp)
    finally:
        await session.close()
