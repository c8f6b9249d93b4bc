"""Benchmark the latency the bridge adds, per sink: QEMU's timestamp → the sink is done.

A fake QMP monitor (``fake_qmp.py``: greeting, handshake, an idle running guest) sends
``--events`` STOP/RESUME events at ``--rate`` events/s, each stamped with the wall clock as
it is written, as QEMU stamps its events.  One ``virtbridge run`` process watches it with a
``qmp`` source and delivers to one sink, wrapped by ``timed_plugin.py``, which notes when the
sink was done with each event: its ``publish`` returned (null, jsonl, log, domain-events) or
the broker acknowledged it (MQTT QoS 1, core NATS once flushed, JetStream).  Reported per sink
and per ``outbox_sync`` (``normal``, ``full``) of the durable outbox: p50, p90, p99 and max.

The brokers (mosquitto, nats-server with JetStream) are started here on free loopback ports.

Usage: ``python bench/latency_bench.py [--rate 1000] [--events 3000]
[--sinks null,jsonl,log,domain-events,mqtt,nats,jetstream] [--sync normal,full]
[--outbox sqlite|memory] [--json FILE]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import benchlib
from fake_qmp import FakeMonitors

benchlib.use_checkout()

from tests.support.bridge import toml  # noqa: E402

TIMED = benchlib.BENCH / "timed_plugin.py"
SINKS = ("null", "jsonl", "log", "domain-events", "mqtt", "nats", "jetstream")
BROKER = {"mqtt": "mosquitto", "nats": "nats-server", "jetstream": "nats-server"}
LABELS = {"nats": "core NATS", "jetstream": "NATS JetStream", "mqtt": "MQTT QoS 1"}
P99_TARGET_MS = 1.0  # durable outbox, outbox_sync = "normal", 1,000 events/s


def sink_table(sink: str, workdir: Path, urls: dict[str, str]) -> dict[str, Any]:
    """The ``[[sinks]]`` table a user would write for ``sink`` (its defaults otherwise)."""
    if sink == "null":
        return {"type": "timed-null"}
    if sink == "jsonl":
        return {"type": "timed-jsonl", "path": str(workdir / "events.jsonl")}
    if sink == "log":  # warning: the bridge logs it at its default level, to a file
        return {"type": "timed-log", "level": "warning"}
    if sink == "domain-events":
        return {"type": "timed-domain-events", "path": str(workdir / "events.txt")}
    if sink == "mqtt":
        return {"type": "timed-mqtt", "url": urls["mosquitto"], "qos": 1}
    if sink == "nats":
        return {"type": "timed-nats", "servers": urls["nats-server"]}
    if sink == "jetstream":
        return {
            "type": "timed-nats",
            "servers": urls["nats-server"],
            "stream": "VIRTBRIDGE",
            "create_stream": True,
        }
    raise ValueError(sink)


async def measure(
    workdir: Path,
    name: str,
    sink: dict[str, Any],
    *,
    outbox: str,
    sync: str,
    rate: float,
    events: int,
    timeout: float,
    settle: float = 0.5,
) -> list[float]:
    """One bridge process, one monitor, ``events`` paced events: the delays in ms."""
    sockets = Path(tempfile.mkdtemp(prefix="vbl-", dir="/tmp"))  # short: sun_path limit
    monitors = await FakeMonitors(sockets, ["lat"]).start()
    times = workdir / f"{name}.times"
    config = workdir / f"{name}.toml"
    bridge = {
        "host": "bench-host",
        "state_dir": str(workdir / f"state-{name}"),
        "control_socket": "off",
        "outbox": outbox,
        "outbox_sync": sync,
        "drain_timeout": 30.0,
    }
    source = {"type": "qmp", "path": str(monitors.path("lat"))}
    config.write_text(toml(bridge, [source], [sink]))
    log = workdir / f"{name}.log"
    first = 0.0
    with log.open("w") as stderr:
        process = subprocess.Popen(
            benchlib.bridge_argv(config, "--plugin", str(TIMED)),
            env=benchlib.child_env(VIRTBRIDGE_BENCH_TIMES=str(times)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 30
            opened = Path(f"{times}.open")
            while not (opened.exists() and monitors.ready):
                if process.poll() is not None:
                    raise SystemExit(
                        f"the bridge stopped ({process.returncode}):\n{benchlib.tail(log)}"
                    )
                if time.monotonic() > deadline:
                    what = "the bridge did not attach and open its sink in 30 s"
                    raise SystemExit(f"{what}:\n{benchlib.tail(log)}")
                await asyncio.sleep(0.02)
            await asyncio.sleep(settle)  # the attach's own events are through
            start = time.monotonic()
            for index in range(events):
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                stamp = monitors.emit("STOP" if index % 2 == 0 else "RESUME")
                if index == 0:
                    first = stamp
            if time.monotonic() - start > events / rate * 1.5 + 1:
                print(f"  ({name}: the events took {time.monotonic() - start:.1f} s to send)")
            await asyncio.sleep(settle)
        finally:
            status = await asyncio.to_thread(benchlib.stop, process, timeout)
            await monitors.close()
            shutil.rmtree(sockets, ignore_errors=True)
    if status != 0:
        raise SystemExit(f"the bridge exited with {status}:\n{benchlib.tail(log)}")
    pairs = array("d")
    with times.open("rb") as data:
        pairs.frombytes(data.read())
    delays = [
        (pairs[i + 1] - pairs[i]) * 1000 for i in range(0, len(pairs), 2) if pairs[i] >= first
    ]
    if len(delays) < events * 0.99:
        raise SystemExit(f"{name}: {len(delays)} of {events} events reached the sink")
    return delays


@contextlib.contextmanager
def brokers(needed: set[str], workdir: Path) -> Iterator[dict[str, str]]:
    """The brokers ``needed`` (program names), started; their URLs by program name."""
    for program in sorted(needed):
        benchlib.need_program(program)
    from tests.support.brokers import Mosquitto, NatsServer

    with contextlib.ExitStack() as stack:
        urls = {}
        if "mosquitto" in needed:
            broker = stack.enter_context(Mosquitto(workdir / "mosquitto", persistence=False))
            urls["mosquitto"] = broker.url()
        if "nats-server" in needed:
            server = stack.enter_context(NatsServer(workdir / "nats"))
            urls["nats-server"] = server.url
        yield urls


def main(argv: list[str] | None = None) -> int:
    begun = time.monotonic()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--events", type=int, default=3000, help="events per run")
    parser.add_argument("--sinks", default=",".join(SINKS), help=f"some of {', '.join(SINKS)}")
    parser.add_argument("--sync", default="normal,full", help="outbox_sync values")
    parser.add_argument("--outbox", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to stop a bridge")
    parser.add_argument(
        "--settle", type=float, default=0.5, help="seconds of quiet before and after the events"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    sinks = [sink for sink in args.sinks.split(",") if sink]
    syncs = [sync for sync in args.sync.split(",") if sync]
    if unknown := set(sinks) - set(SINKS):
        parser.error(f"--sinks: unknown {', '.join(sorted(unknown))}")
    if unknown := set(syncs) - {"normal", "full"}:
        parser.error(f"--sync: unknown {', '.join(sorted(unknown))}")
    if args.outbox == "memory":
        syncs = ["normal"]  # no effect without a file
    outbox_name = "durable" if args.outbox == "sqlite" else "memory"
    figures: list[benchlib.Figure] = []
    print(
        f"QEMU timestamp → sink done, {args.events:,} events at {args.rate:g}/s, "
        f"{outbox_name} outbox:"
    )
    print(f"{'sink':16} {'sync':7} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  (ms)")
    with tempfile.TemporaryDirectory(prefix="virtbridge-latency-") as tmp:
        workdir = Path(tmp)
        with brokers({BROKER[s] for s in sinks if s in BROKER}, workdir) as urls:
            for sink in sinks:
                for sync in syncs:
                    name = f"{sink}-{sync}"
                    delays = asyncio.run(
                        measure(
                            workdir,
                            name,
                            sink_table(sink, workdir, urls),
                            outbox=args.outbox,
                            sync=sync,
                            rate=args.rate,
                            events=args.events,
                            timeout=args.timeout,
                            settle=args.settle,
                        )
                    )
                    cut = benchlib.percentiles(delays)
                    print(
                        f"{sink:16} {sync:7} {cut['p50']:8.3f} {cut['p90']:8.3f} "
                        f"{cut['p99']:8.3f} {cut['max']:8.3f}",
                        flush=True,
                    )
                    figures += latency_figures(sink, sync, args, outbox_name, cut, len(delays))
    if args.json:
        benchlib.write_json(args.json, "latency", figures, begun)
    return 0


def latency_figures(
    sink: str,
    sync: str,
    args: argparse.Namespace,
    outbox_name: str,
    cut: dict[str, float],
    count: int,
) -> list[benchlib.Figure]:
    figures = []
    for point in ("p50", "p99"):
        figure = benchlib.Figure(
            "latency",
            f"latency.{sink}.{args.outbox}.{sync}.{point}",
            f"QMP ts → {LABELS.get(sink, sink)}, {outbox_name}"
            + (f" sync={sync}" if args.outbox == "sqlite" else "")
            + f", {args.rate:,.0f}/s: {point}",
            cut[point],
            "ms",
            params={
                "sink": sink,
                "outbox": args.outbox,
                "sync": sync,
                "rate": args.rate,
                "events": count,
                **{k: v for k, v in cut.items()},
            },
        )
        if point == "p99" and sync == "normal" and args.outbox == "sqlite":
            figure.target = f"≤ {P99_TARGET_MS:g} ms"
            figure.met = cut[point] <= P99_TARGET_MS
        figures.append(figure)
    return figures


if __name__ == "__main__":
    sys.exit(main())
