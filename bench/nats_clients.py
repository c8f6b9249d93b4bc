"""The plain nats-py processes the NATS benchmark measures the bridge against.

``jetstream``: publish every (subject, payload) of a file into a JetStream stream with the
best settings known here (``publish_async`` pipelined in a window of 1,000, each with a
``Nats-Msg-Id``), then wait for every acknowledgement.  ``core``: publish + flush.
``paced``: publish stamped CloudEvent-shaped payloads at a fixed rate (JetStream, each ack
awaited in the background); ``paced-core``: the same with core NATS (publish, the client's
flusher sends it).  ``subscribe``: latency from each payload's ``time`` to receipt.

Usage: ``python bench/nats_clients.py jetstream URL FILE`` | ``core URL FILE`` |
``paced URL SUBJECT COUNT RATE`` | ``paced-core URL SUBJECT COUNT RATE`` |
``subscribe URL SUBJECT COUNT TIMEOUT``
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import sys
import time

import nats

WINDOW = 1000


def load(path: str) -> list[tuple[str, bytes, str]]:
    messages = []
    with open(path, "rb") as stream:
        for line in stream:
            subject, _, rest = line.rstrip(b"\n").partition(b"\t")
            msg_id, _, payload = rest.partition(b"\t")
            messages.append((subject.decode(), payload, msg_id.decode()))
    return messages


async def jetstream(url: str, path: str) -> None:
    messages = load(path)
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=WINDOW)
    for subject, payload, msg_id in messages:
        await js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id})
    await js.publish_async_completed()
    await nc.close()


async def core(url: str, path: str) -> None:
    messages = load(path)
    nc = await nats.connect(url)
    for subject, payload, _ in messages:
        await nc.publish(subject, payload)
    await nc.flush()
    await nc.close()


async def paced(url: str, subject: str, count: int, rate: float, stream: bool = True) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await asyncio.sleep(0.5)
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        payload = json.dumps({"specversion": "1.0", "id": str(index), "time": now}).encode()
        if stream:
            await js.publish_async(subject, payload, headers={"Nats-Msg-Id": f"paced-{index}"})
        else:
            await nc.publish(subject, payload)
    if stream:
        await js.publish_async_completed()
    await nc.flush()
    await nc.close()


async def subscribe(url: str, subject: str, count: int, timeout: float) -> None:
    latencies: list[float] = []
    done = asyncio.Event()
    nc = await nats.connect(url)

    async def got(msg: object) -> None:
        received = time.time()
        body = json.loads(msg.data)  # type: ignore[attr-defined]
        if "time" in body:
            when = dt.datetime.fromisoformat(body["time"].replace("Z", "+00:00")).timestamp()
            latencies.append(received - when)
        if len(latencies) >= count:
            done.set()

    await nc.subscribe(subject, cb=got)
    await nc.flush()
    print("ready", flush=True)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)
    await nc.close()
    print(json.dumps({"received": len(latencies), "latencies": latencies}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "jetstream":
        asyncio.run(jetstream(args[0], args[1]))
    elif command == "core":
        asyncio.run(core(args[0], args[1]))
    elif command == "paced":
        asyncio.run(paced(args[0], args[1], int(args[2]), float(args[3])))
    elif command == "paced-core":
        asyncio.run(paced(args[0], args[1], int(args[2]), float(args[3]), stream=False))
    elif command == "subscribe":
        asyncio.run(subscribe(args[0], args[1], int(args[2]), float(args[3])))
    else:
        sys.exit(__doc__)
