"""Benchmark the bus sinks against the plain client loops, on one broker, in one run.

For each bus, two figures, each measured as a user sees it:

* throughput: the whole ``virtbridge run`` process (replay of ``--events`` events, engine,
  durable outbox, publishing) from start to exit, against a plain client process that only
  publishes the same payloads to the same topics with the best settings known here;
* latency at ``--rate`` events/s: from the event's time (QEMU's timestamp, stamped as the
  QMP event is fed) to a subscriber in another process receiving it, against the plain
  client publishing stamped payloads at the same rate (``--latency-events 0``: skipped).

The bridge runs with its defaults: the durable outbox, ``outbox_sync = "normal"``.
The brokers are started here, on free loopback ports.

Usage: ``python bench/bus_bench.py [--events 100000] [--rate 1000] [--latency-events 5000]
[--bus mqtt nats] [--json FILE]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import benchlib

benchlib.use_checkout()
ROOT = benchlib.ROOT

from tests.support.bigtrace import build_trace  # noqa: E402
from tests.support.bridge import toml  # noqa: E402
from tests.support.brokers import Mosquitto, NatsServer  # noqa: E402

from virtbridge import escape_token  # noqa: E402
from virtbridge_nats import subject_token  # noqa: E402

HOST = "bench-host"
CLIENTS = ROOT / "bench" / "mqtt_clients.py"
NATS_CLIENTS = ROOT / "bench" / "nats_clients.py"
TIMEOUT = 600.0  # seconds, at most, for one process (a bridge run, a plain client)


@dataclass
class Row:
    bus: str
    what: str
    bridge: float
    plain: float
    unit: str
    key: str = ""
    """Stable name of the measure: ``qos1``, ``jetstream.p99``, ..."""

    @property
    def ratio(self) -> float:
        if self.unit == "events/s":
            return self.bridge / self.plain if self.plain else 0.0
        return self.bridge - self.plain


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    benchlib.run(command, cwd=cwd, timeout=TIMEOUT)
    return time.perf_counter() - started


def bridge_command(config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "virtbridge",
        "run",
        "-c",
        str(config),
        "--plugin",
        str(ROOT / "bench" / "pace_plugin.py"),
    ]


def write_bridge(
    path: Path, state: Path, source: Mapping[str, object], sink: Mapping[str, object]
) -> Path:
    path.write_text(
        toml(
            {"host": HOST, "state_dir": str(state), "control_socket": "off", "drain_timeout": 60.0},
            [source],
            [sink],
        )
    )
    return path


def percentiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return q[49] * 1000, q[98] * 1000


def subscriber(arguments: list[str], count: int, timeout: float = 120) -> subprocess.Popen[str]:
    """A subscriber process (``arguments`` after the interpreter), once it is subscribed."""
    process = subprocess.Popen(
        [sys.executable, *arguments, str(count), str(timeout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=benchlib.child_env(),
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        benchlib.stop(process)
        sys.exit("the subscriber did not start")
    return process


def collect(process: subprocess.Popen[str], count: int) -> list[float]:
    try:
        out, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        benchlib.stop(process)
        sys.exit(f"the subscriber did not finish within {TIMEOUT:.0f} s")
    latencies = list(json.loads(out.strip().splitlines()[-1])["latencies"])
    if len(latencies) < count:
        sys.exit(f"the subscriber received {len(latencies)} of {count} events")
    return latencies


def cloudevents(work: Path, events: int) -> tuple[Path, list[dict[str, object]], list[bytes]]:
    """A trace of about ``events`` events and the CloudEvents the bridge makes of it."""
    trace = work / "trace.jsonl"
    if not trace.exists():
        build_trace(trace, events)
    replay = benchlib.run(
        [sys.executable, "-m", "virtbridge", "replay", str(trace), "--format", "json"],
        timeout=TIMEOUT,
    )
    lines = [line.encode() for line in replay.stdout.splitlines()]
    return trace, [json.loads(line) for line in lines], lines


def latency_rows(
    bus: str, rate: float, bridge: list[float], plain: list[float], what: str, key: str
) -> list[Row]:
    ours, theirs = percentiles(bridge), percentiles(plain)
    return [
        Row(
            bus,
            f"{what}, {name} latency at {rate:g}/s",
            ours[index],
            theirs[index],
            "ms",
            f"{key}.{name}",
        )
        for index, name in enumerate(("p50", "p99"))
    ]


def mqtt_rows(work: Path, events: int, rate: float, latency_events: int) -> list[Row]:
    benchlib.need_program("mosquitto")
    benchlib.need_module("paho", "mqtt")
    rows = []
    trace, bodies, lines = cloudevents(work, events)
    with Mosquitto(work / "mosquitto", persistence=False) as broker:
        # The same payloads and topics the bridge publishes, for the plain publisher.
        payloads = work / "mqtt-payloads.tsv"
        with payloads.open("wb") as out:
            for body, line in zip(bodies, lines, strict=True):
                kind = str(body["type"]).removeprefix("io.virtbridge.domain.")
                name = escape_token(str(body["subject"]))
                topic = f"virtbridge/{escape_token(HOST)}/domain/{name}/{kind}"
                out.write(topic.encode() + b"\t" + line + b"\n")
        count = len(lines)
        plain = timed(
            [sys.executable, str(CLIENTS), "publish", str(broker.port), str(payloads)], work
        )
        config = write_bridge(
            work / "mqtt.toml",
            work / "state-mqtt",
            {"type": "replay", "path": str(trace), "progress": False},
            {"type": "mqtt", "url": broker.url(), "qos": 1},
        )
        bridge = timed(bridge_command(config), work)
        rows.append(
            Row(
                "mqtt",
                f"QoS 1, {count:,} events",
                count / bridge,
                count / plain,
                "events/s",
                "qos1",
            )
        )
        if latency_events <= 0:
            return rows

        sub = subscriber(
            [str(CLIENTS), "subscribe", str(broker.port), "virtbridge/+/domain/+/lifecycle"],
            latency_events,
        )
        config = write_bridge(
            work / "mqtt-paced.toml",
            work / "state-mqtt-paced",
            {"type": "pace", "rate": rate, "count": latency_events},
            {"type": "mqtt", "url": broker.url(), "qos": 1},
        )
        timed(bridge_command(config), work)
        ours = collect(sub, latency_events)
        sub = subscriber(
            [str(CLIENTS), "subscribe", str(broker.port), "plain/paced"], latency_events
        )
        timed(
            [
                sys.executable,
                str(CLIENTS),
                "paced",
                str(broker.port),
                str(latency_events),
                str(rate),
            ],
            work,
        )
        rows += latency_rows("mqtt", rate, ours, collect(sub, latency_events), "QoS 1", "qos1")
    return rows


def fresh_stream(url: str) -> None:
    """An empty stream VIRTBRIDGE (virtbridge.>, 2 minutes of message ids) and no bucket."""
    import asyncio

    import nats
    from nats.js.api import StreamConfig

    async def make() -> None:
        nc = await nats.connect(url)
        js = nc.jetstream()
        for name in ("VIRTBRIDGE", "KV_virtbridge_state"):
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
        await js.add_stream(
            StreamConfig(name="VIRTBRIDGE", subjects=["virtbridge.>"], duplicate_window=120)
        )
        await js.create_key_value(bucket="virtbridge_state", history=1)
        await nc.close()

    asyncio.run(asyncio.wait_for(make(), 30))


def nats_rows(work: Path, events: int, rate: float, latency_events: int) -> list[Row]:
    benchlib.need_program("nats-server")
    benchlib.need_module("nats", "nats")
    rows = []
    trace, bodies, lines = cloudevents(work, events)
    with NatsServer(work / "nats") as server:
        payloads = work / "nats-payloads.tsv"
        with payloads.open("wb") as out:
            for body, line in zip(bodies, lines, strict=True):
                kind = str(body["type"]).removeprefix("io.virtbridge.domain.")
                name = subject_token(str(body["subject"]))
                subject = f"virtbridge.{subject_token(HOST)}.domain.{name}.{kind}"
                out.write(f"{subject}\t{body['id']}\t".encode() + line + b"\n")
        count = len(lines)
        modes = (
            ("jetstream", {"type": "nats", "servers": server.url, "stream": "VIRTBRIDGE"}),
            ("core", {"type": "nats", "servers": server.url}),
        )
        for mode, sink in modes:
            fresh_stream(server.url)
            plain = timed(
                [sys.executable, str(NATS_CLIENTS), mode, server.url, str(payloads)], work
            )
            fresh_stream(server.url)
            config = write_bridge(
                work / f"nats-{mode}.toml",
                work / f"state-nats-{mode}",
                {"type": "replay", "path": str(trace), "progress": False},
                sink,
            )
            bridge = timed(bridge_command(config), work)
            rows.append(
                Row(
                    "nats",
                    f"{WHAT[mode]}, {count:,} events",
                    count / bridge,
                    count / plain,
                    "events/s",
                    mode,
                )
            )
        if latency_events <= 0:
            return rows

        for mode, sink in modes:
            fresh_stream(server.url)
            sub = subscriber(
                [str(NATS_CLIENTS), "subscribe", server.url, "virtbridge.*.domain.*.lifecycle"],
                latency_events,
            )
            config = write_bridge(
                work / f"nats-{mode}-paced.toml",
                work / f"state-nats-{mode}-paced",
                {"type": "pace", "rate": rate, "count": latency_events},
                sink,
            )
            timed(bridge_command(config), work)
            ours = collect(sub, latency_events)
            sub = subscriber(
                [str(NATS_CLIENTS), "subscribe", server.url, "virtbridge.plain.paced"],
                latency_events,
            )
            timed(
                [
                    sys.executable,
                    str(NATS_CLIENTS),
                    "paced" if mode == "jetstream" else "paced-core",
                    server.url,
                    "virtbridge.plain.paced",
                    str(latency_events),
                    str(rate),
                ],
                work,
            )
            theirs = collect(sub, latency_events)
            rows += latency_rows("nats", rate, ours, theirs, WHAT[mode], mode)
    return rows


WHAT = {"jetstream": "JetStream + Nats-Msg-Id", "core": "core NATS"}
PLAIN = {"mqtt": "paho-mqtt", "nats": "nats-py"}


def figures(rows: list[Row], events: int, rate: float) -> list[benchlib.Figure]:
    """Each row as two figures: the bridge's, with the comparison, and the plain client's."""
    out = []
    for row in rows:
        what = row.what.split(", ")[0]
        if row.bus == "mqtt":
            what = f"MQTT {what}"
        plain = f"plain {PLAIN[row.bus]}"
        params: dict[str, object] = {"bus": row.bus, "what": row.what}
        if row.unit == "events/s":
            count = row.what.split(", ")[-1]
            labels = (f"{what}, virtbridge run, {count}", f"{what}, {plain}, {count}")
            note = f"bridge/plain {row.ratio:.2f}×"
            stem = f"bus.rate.{row.bus}.{row.key}"
            params["events"] = events
        else:
            point = row.key.rsplit(".", 1)[-1]
            head = f"{what} → subscriber, {rate:,.0f}/s"
            labels = (f"{head}, virtbridge run: {point}", f"{head}, {plain}: {point}")
            note = f"added {row.ratio:+.2f} ms over plain"
            stem = f"bus.latency.{row.bus}.{row.key}"
            params["rate"] = rate
        out.append(
            benchlib.Figure(
                "bus", f"{stem}.bridge", labels[0], row.bridge, row.unit, note, params=params
            )
        )
        out.append(
            benchlib.Figure("bus", f"{stem}.plain", labels[1], row.plain, row.unit, params=params)
        )
    return out


def main(argv: list[str] | None = None) -> int:
    begun = time.monotonic()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--latency-events", type=int, default=5000)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--bus", nargs="+", choices=("mqtt", "nats"), default=["mqtt", "nats"])
    args = parser.parse_args(argv)
    if "mqtt" in args.bus:
        benchlib.need_program("mosquitto")
    if "nats" in args.bus:
        benchlib.need_program("nats-server")
    with tempfile.TemporaryDirectory(prefix="virtbridge-bus-") as tmp:
        rows = []
        if "mqtt" in args.bus:
            rows += mqtt_rows(Path(tmp), args.events, args.rate, args.latency_events)
        if "nats" in args.bus:
            rows += nats_rows(Path(tmp), args.events, args.rate, args.latency_events)
    print(f"{'bus':6} {'measure':40} {'bridge':>12} {'plain':>12} {'bridge/plain or +':>18}")
    for row in rows:
        relation = f"{row.ratio:.2f}x" if row.unit == "events/s" else f"{row.ratio:+.3f} ms"
        print(
            f"{row.bus:6} {row.what:40} {row.bridge:>12,.3f} {row.plain:>12,.3f} {relation:>18}"
            f"  {row.unit}"
        )
    if args.json:
        benchlib.write_json(args.json, "bus", figures(rows, args.events, args.rate), begun)
        document = json.loads(Path(args.json).read_text())
        document["rows"] = [{**asdict(r), "ratio": r.ratio} for r in rows]
        Path(args.json).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
