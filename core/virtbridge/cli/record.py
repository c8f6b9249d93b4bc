"""``virtbridge record``: capture a live QMP monitor in the trace format."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from typing import IO, Any

import msgspec

from virtbridge.engine.signals import MonitorEof
from virtbridge.engine.time import Timestamp
from virtbridge.wire.trace import signal_to_object


def _address(text: str) -> str | tuple[str, int]:
    host, _, port = text.rpartition(":")
    if host and port.isdigit() and "/" not in text:
        return (host.strip("[]"), int(port))
    return text


async def record(qmp: str, output: str, *, domain: str | None, duration: float | None) -> int:
    """Write the monitor's status and every event until EOF, a signal, or ``duration``."""
    from virtbridge_qmp import MonitorSession, QmpError

    encoder = msgspec.json.Encoder()
    stream: IO[bytes] = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115
    session = MonitorSession(_address(qmp), None, domain=domain)
    try:
        await session.connect()
    except QmpError as exc:
        print(f"virtbridge: {exc}", file=sys.stderr)
        return 1
    assert session.domain is not None
    name = session.domain

    def write(obj: dict[str, Any]) -> None:
        stream.write(encoder.encode(obj) + b"\n")
        stream.flush()

    when = time.strftime("%Y-%m-%d %H:%M:%S %z")
    stream.write(f"# recorded by virtbridge record from {qmp} ({when})\n".encode())
    version = (session.client.greeting or {}).get("QMP", {}).get("version", {}).get("qemu", {})
    if version:
        numbers = ".".join(str(version.get(part)) for part in ("major", "minor", "micro"))
        stream.write(f"# QEMU {numbers}\n".encode())
    write(signal_to_object(await session.status(fresh=False)))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    count = 0

    async def pump() -> None:
        nonlocal count
        try:
            async for event in session.client.events():
                obj: dict[str, Any] = {"domain": name, "event": event.name}
                if "data" in event.raw:
                    obj["data"] = event.raw["data"]
                obj["timestamp"] = {
                    "seconds": event.timestamp.seconds,
                    "microseconds": event.timestamp.microseconds,
                }
                write(obj)
                count += 1
        except QmpError:
            eof = MonitorEof(domain=name, timestamp=Timestamp.from_float(time.time()))
            write(signal_to_object(eof))
        stop.set()

    task = asyncio.create_task(pump())
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await session.close()
    if stream is not sys.stdout.buffer:
        stream.close()
    print(f"virtbridge: recorded {count} events from {name!r} to {output}", file=sys.stderr)
    return 0
