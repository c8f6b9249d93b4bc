"""Benchmark the bus sinks against the plain client loops, on one broker, in one run.

For each bus, two figures, each measured as a user sees it:

* throughput: the whole ``virtbridge run`` process (replay of ``--events`` events, engine,
  durable outbox, publishing) from start to exit, against a plain client process that only
  publishes the same payloads to the same topics with the best settings known here;
* latency at ``--rate`` events/s: from the event's time (QEMU's timestamp, stamped as the
  QMP event is fed) to a subscriber in another process receiving it, against the plain
  client publishing stamped payloads at the same rate.

The brokers are started here, on free loopback ports.

Usage: ``python bench/bus_bench.py [--events 100000] [--rate 1000] [--latency-events 5000]
[--json FILE]``
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
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.bigtrace import build_trace  # noqa: E402
from tests.support.bridge import toml  # noqa: E402
from tests.support.brokers import Mosquitto, NatsServer  # noqa: E402

from virtbridge import escape_token  # noqa: E402
from virtbridge_nats import subject_token  # noqa: E402

HOST = "bench-host"
CLIENTS = ROOT / "bench" / "mqtt_clients.py"
NATS_CLIENTS = ROOT / "bench" / "nats_clients.py"


@dataclass
class Row:
    bus: str
    what: str
    bridge: float
    plain: float
    unit: str

    @property
    def ratio(self) -> float:
        if self.unit == "events/s":
            return self.bridge / self.plain if self.plain else 0.0
        return self.bridge - self.plain


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{command[:4]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return elapsed


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
    path: Path, state: Path, source: dict[str, object], sink: dict[str, object]
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
        [sys.executable, *arguments, str(count), str(timeout)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        sys.exit("the subscriber did not start")
    return process


def collect(process: subprocess.Popen[str]) -> list[float]:
    out, _ = process.communicate(timeout=600)
    return list(json.loads(out.strip().splitlines()[-1])["latencies"])


def cloudevents(work: Path, events: int) -> tuple[Path, list[dict[str, object]], list[bytes]]:
    """A trace of about ``events`` events and the CloudEvents the bridge makes of it."""
    trace = work / "trace.jsonl"
    if not trace.exists():
        build_trace(trace, events)
    replay = subprocess.run(
        [sys.executable, "-m", "virtbridge", "replay", str(trace), "--format", "json"],
        capture_output=True,
        check=True,
    )
    lines = replay.stdout.splitlines()
    return trace, [json.loads(line) for line in lines], lines


def latency_rows(bus: str, rate: float, bridge: list[float], plain: list[float]) -> list[Row]:
    ours, theirs = percentiles(bridge), percentiles(plain)
    return [
        Row(bus, f"{name} latency at {rate:g}/s", ours[index], theirs[index], "ms")
        for index, name in enumerate(("p50", "p99"))
    ]


def mqtt_rows(work: Path, events: int, rate: float, latency_events: int) -> list[Row]:
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
            Row("mqtt", f"QoS 1, {count:,} events", count / bridge, count / plain, "events/s")
        )

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
        ours = collect(sub)
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
        rows += latency_rows("mqtt", rate, ours, collect(sub))
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

    asyncio.run(make())


def nats_rows(work: Path, events: int, rate: float, latency_events: int) -> list[Row]:
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
        for mode, sink in (
            ("jetstream", {"type": "nats", "servers": server.url, "stream": "VIRTBRIDGE"}),
            ("core", {"type": "nats", "servers": server.url}),
        ):
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
            what = "JetStream + Nats-Msg-Id" if mode == "jetstream" else "core NATS"
            rows.append(
                Row("nats", f"{what}, {count:,} events", count / bridge, count / plain, "events/s")
            )

        fresh_stream(server.url)
        sub = subscriber(
            [str(NATS_CLIENTS), "subscribe", server.url, "virtbridge.*.domain.*.lifecycle"],
            latency_events,
        )
        config = write_bridge(
            work / "nats-paced.toml",
            work / "state-nats-paced",
            {"type": "pace", "rate": rate, "count": latency_events},
            {"type": "nats", "servers": server.url, "stream": "VIRTBRIDGE"},
        )
        timed(bridge_command(config), work)
        ours = collect(sub)
        sub = subscriber(
            [str(NATS_CLIENTS), "subscribe", server.url, "virtbridge.plain.paced"], latency_events
        )
        timed(
            [
                sys.executable,
                str(NATS_CLIENTS),
                "paced",
                server.url,
                "virtbridge.plain.paced",
                str(latency_events),
                str(rate),
            ],
            work,
        )
        rows += latency_rows("nats", rate, ours, collect(sub))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--latency-events", type=int, default=5000)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--bus", nargs="+", choices=("mqtt", "nats"), default=["mqtt", "nats"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="virtbridge-bus-") as tmp:
        rows = []
        if "mqtt" in args.bus:
            rows += mqtt_rows(Path(tmp), args.events, args.rate, args.latency_events)
        if "nats" in args.bus:
            rows += nats_rows(Path(tmp), args.events, args.rate, args.latency_events)
    print(f"{'bus':6} {'measure':28} {'bridge':>12} {'plain':>12} {'bridge/plain or +':>18}")
    for row in rows:
        relation = f"{row.ratio:.2f}x" if row.unit == "events/s" else f"{row.ratio:+.3f} ms"
        print(
            f"{row.bus:6} {row.what:28} {row.bridge:>12,.3f} {row.plain:>12,.3f} {relation:>18}"
            f"  {row.unit}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps([{**asdict(r), "ratio": r.ratio} for r in rows], indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
