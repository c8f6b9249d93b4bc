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
from tests.support.brokers import Mosquitto  # noqa: E402

from virtbridge import escape_token  # noqa: E402

HOST = "bench-host"
CLIENTS = ROOT / "bench" / "mqtt_clients.py"


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


def subscriber(port: int, topic: str, count: int, timeout: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(CLIENTS), "subscribe", str(port), topic, str(count), str(timeout)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        sys.exit("the subscriber did not start")
    return process


def collect(process: subprocess.Popen[str]) -> list[float]:
    out, _ = process.communicate(timeout=600)
    return list(json.loads(out.strip().splitlines()[-1])["latencies"])


def mqtt_rows(work: Path, events: int, rate: float, latency_events: int) -> list[Row]:
    rows = []
    with Mosquitto(work / "mosquitto", persistence=False) as broker:
        trace = work / "trace.jsonl"
        build_trace(trace, events)
        # The same payloads and topics the bridge publishes, for the plain publisher.
        replay = subprocess.run(
            [sys.executable, "-m", "virtbridge", "replay", str(trace), "--format", "json"],
            capture_output=True,
            check=True,
        )
        payloads = work / "payloads.tsv"
        count = 0
        with payloads.open("wb") as out:
            for line in replay.stdout.splitlines():
                body = json.loads(line)
                kind = body["type"].removeprefix("io.virtbridge.domain.")
                topic = (
                    f"virtbridge/{escape_token(HOST)}/domain/{escape_token(body['subject'])}/{kind}"
                )
                out.write(topic.encode() + b"\t" + line + b"\n")
                count += 1
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

        latency = {}
        sub = subscriber(broker.port, "virtbridge/+/domain/+/lifecycle", latency_events, 120)
        config = write_bridge(
            work / "mqtt-paced.toml",
            work / "state-mqtt-paced",
            {"type": "pace", "rate": rate, "count": latency_events},
            {"type": "mqtt", "url": broker.url(), "qos": 1},
        )
        timed(bridge_command(config), work)
        latency["bridge"] = percentiles(collect(sub))
        sub = subscriber(broker.port, "plain/paced", latency_events, 120)
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
        latency["plain"] = percentiles(collect(sub))
        for index, name in enumerate(("p50", "p99")):
            rows.append(
                Row(
                    "mqtt",
                    f"{name} latency at {rate:g}/s",
                    latency["bridge"][index],
                    latency["plain"][index],
                    "ms",
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--latency-events", type=int, default=5000)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="virtbridge-bus-") as tmp:
        rows = mqtt_rows(Path(tmp), args.events, args.rate, args.latency_events)
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
