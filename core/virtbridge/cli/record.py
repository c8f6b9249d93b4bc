"""``virtbridge record``: capture a live input in the trace format.

The input comes from a plugin (``virtbridge_recorder_types``; the QMP plugin offers
``--qmp``); this writes what it yields: a header of comment lines, then one trace line per
signal, until the input ends, a signal arrives (Ctrl-C) or ``duration`` passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from typing import IO

import msgspec

from virtbridge.errors import ConfigError
from virtbridge.plugin.api import RecorderType
from virtbridge.plugin.loading import Hooks, the_offer
from virtbridge.wire.trace import signal_to_object


def find_recorder(hooks: Hooks, name: str) -> RecorderType:
    """The one installed recorder called ``name``; :class:`ConfigError` otherwise."""
    offers = hooks.recorder_types().get(name, [])
    if not offers:
        known = ", ".join(f"--{n}" for n in sorted(hooks.recorder_types())) or "none installed"
        raise ConfigError(f"nothing here records --{name} (known: {known})")
    return the_offer(offers, f"recording --{name}")


async def record(
    recorder: RecorderType,
    address: str,
    output: str,
    *,
    domain: str | None,
    duration: float | None,
) -> int:
    """Write what ``recorder`` reads from ``address`` to ``output`` ('-': stdout)."""
    items = recorder.open(address, domain)
    try:
        first = await anext(items)
    except StopAsyncIteration:
        first = None
    except Exception as exc:  # the plugin's message says what is wrong (no such socket, ...)
        print(f"virtbridge: {exc}", file=sys.stderr)
        return 1
    encoder = msgspec.json.Encoder()
    stream: IO[bytes] = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115
    when = time.strftime("%Y-%m-%d %H:%M:%S %z")
    stream.write(f"# recorded by virtbridge record from {address} ({when})\n".encode())
    name = domain or address
    count = 0

    def write(item: object) -> None:
        nonlocal count, name
        if isinstance(item, str):
            stream.write(f"# {item}\n".encode())
        else:
            obj = signal_to_object(item)  # type: ignore[arg-type]
            stream.write(encoder.encode(obj) + b"\n")
            name = obj["domain"]
            count += "event" in obj
        stream.flush()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)

    async def pump() -> None:
        if first is not None:
            write(first)
            async for item in items:
                write(item)
        stop.set()

    task = asyncio.create_task(pump())
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await items.aclose()  # type: ignore[attr-defined]
    if stream is not sys.stdout.buffer:
        stream.close()
    print(f"virtbridge: recorded {count} events from {name!r} to {output}", file=sys.stderr)
    return 0
