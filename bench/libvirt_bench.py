"""Benchmark the libvirt source on libvirt's ``test:///default`` driver.

The test driver lives inside the client library, so the burst has to come from inside the
bridge's own process: this file is loaded as a plugin (``--plugin``) and adds

* a ``burst`` hook: once the bridge runs, a thread defines and undefines ``--count`` domains
  as fast as libvirt allows (2 events each), then suspends and resumes the driver's ``test``
  domain ``--paced`` times, 5 ms apart (the latency of single events on a quiet bridge);
* a ``timed`` sink: for every event, the wall clock when the sink got it minus the event's
  timestamp (taken in libvirt's callback, when the event reached the client).

Reported, for the in-memory and the SQLite outbox: events/s end to end (first callback to
the burst's last event at the sink) next to the rate libvirt produced them (the driver's calls
share the bridge's process and its two cores, so libvirt is the limit: the latency shows the
source keeping up), and the
event-to-sink latency (p50, p90, p99, max) of the burst and of the paced events.

Usage: ``python bench/libvirt_bench.py [--count 10000] [--paced 200]
[--outbox memory|sqlite|both] [--json FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Also loaded by the bridge as a plugin (by path): the bench directory is not on its path.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

import benchlib

benchlib.use_checkout()
ROOT = benchlib.ROOT

import virtbridge  # noqa: E402

XML = "<domain type='test'><name>{}</name><memory>8192</memory><os><type>hvm</type></os></domain>"


# -- the plugin the bridge loads -----------------------------------------------------------


class TimedConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    report: str
    expect: int


class TimedSink(virtbridge.Sink):
    batch_size = 1024

    def __init__(self, config: TimedConfig, ctx: virtbridge.SinkContext) -> None:
        self.config = config
        self.delays: list[tuple[str, float]] = []
        self.first: float | None = None
        self.burst_done = 0.0

    async def publish(self, records: Sequence[virtbridge.Record]) -> None:
        now = time.time()
        for record in records:
            event = record.event
            stamp = event.timestamp
            if stamp is None or event.domain.name.startswith("marker"):
                continue
            when = stamp.as_float()
            if self.first is None:
                self.first = when
            phase = "paced" if event.domain.name == "test" else "burst"
            if phase == "burst":
                self.burst_done = now
            self.delays.append((phase, now - when))
        if len(self.delays) >= self.config.expect:
            report = {"first": self.first, "burst_done": self.burst_done, "delays": self.delays}
            Path(self.config.report).write_text(json.dumps(report))
            self.config.expect = 1 << 62


def _burst(count: int, paced: int, done: Path) -> None:
    import libvirt  # type: ignore[import-untyped]

    time.sleep(1.0)  # the source connects first (registered before the first define)
    conn = libvirt.open("test:///default")
    started = time.time()
    for index in range(count):
        conn.defineXML(XML.format(f"b{index}")).undefine()
    produced = time.time()
    dom = conn.lookupByName("test")
    for index in range(paced):
        (dom.suspend if index % 2 == 0 else dom.resume)()
        time.sleep(0.005)
    done.write_text(json.dumps({"started": started, "produced": produced}))


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[TimedConfig]]:
    return [virtbridge.SinkType("timed", TimedConfig, TimedSink, "latency per event (bench)")]


@virtbridge.hookimpl
def virtbridge_bridge_started(bridge: Any) -> None:
    count = int(os.environ.get("LIBVIRT_BENCH_COUNT", "0"))
    if count:
        paced = int(os.environ["LIBVIRT_BENCH_PACED"])
        done = Path(os.environ["LIBVIRT_BENCH_DONE"])
        threading.Thread(target=_burst, args=(count, paced, done), daemon=True).start()


# -- the driver ---------------------------------------------------------------------------------


def _plugins() -> list[str]:
    import importlib.metadata

    points = importlib.metadata.entry_points(group="virtbridge")
    if any(point.value.split(":")[0] == "virtbridge_libvirt" for point in points):
        return []
    return ["virtbridge_libvirt"]


def run(count: int, paced: int, outbox: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vb-lvbench-") as tmp:
        root = Path(tmp)
        report, done = root / "report.json", root / "done.json"
        plugins = ", ".join(json.dumps(p) for p in [*_plugins(), str(Path(__file__).resolve())])
        config = root / "virtbridge.toml"
        config.write_text(
            f'[bridge]\nstate_dir = "{root / "state"}"\ncontrol_socket = "off"\n'
            f'outbox = "{outbox}"\nplugins = [{plugins}]\n'
            '[[sources]]\ntype = "libvirt"\nuri = "test:///default"\nlook_again = []\n'
            f'[[sinks]]\ntype = "timed"\nreport = "{report}"\nexpect = {2 * count + paced}\n'
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(ROOT / part) for part in ("core", "plugins", "")),
            "LIBVIRT_BENCH_COUNT": str(count),
            "LIBVIRT_BENCH_PACED": str(paced),
            "LIBVIRT_BENCH_DONE": str(done),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "virtbridge", "run", "-c", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 300
            while not report.exists() and time.monotonic() < deadline:
                if process.poll() is not None:
                    raise SystemExit(f"the bridge stopped: {process.stderr.read()}")  # type: ignore[union-attr]
                time.sleep(0.1)
            if not report.exists():
                raise SystemExit("no report within 300 s")
            time.sleep(0.2)
            data = json.loads(report.read_text())
            produced = json.loads(done.read_text())
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    burst = sorted(d for phase, d in data["delays"] if phase == "burst")
    steady = sorted(d for phase, d in data["delays"] if phase == "paced")
    return {
        "outbox": outbox,
        "events": len(burst),
        "libvirt_rate": 2 * count / (produced["produced"] - produced["started"]),
        "source_rate": len(burst) / (data["burst_done"] - data["first"]),
        "burst": _percentiles(burst),
        "paced": _percentiles(steady),
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    cut = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": values[len(values) // 2] * 1000,
        "p90": cut[89] * 1000,
        "p99": cut[98] * 1000,
        "max": values[-1] * 1000,
    }


def main(argv: Sequence[str] | None = None) -> int:
    begun = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="define/undefine pairs")
    parser.add_argument("--paced", type=int, default=200, help="paced suspend/resume events")
    parser.add_argument("--outbox", choices=("memory", "sqlite", "both"), default="both")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    benchlib.need_module("libvirt", "libvirt")
    kinds = ("memory", "sqlite") if args.outbox == "both" else (args.outbox,)
    figures: list[benchlib.Figure] = []
    for kind in kinds:
        result = run(args.count, args.paced, kind)
        figures += libvirt_figures(result, args.paced)
        burst, paced = result["burst"], result["paced"]
        print(
            f"outbox {kind}: {result['events']} events; libvirt produced "
            f"{result['libvirt_rate']:,.0f}/s, through the source {result['source_rate']:,.0f}/s"
        )
        print(
            "  event → sink, burst: p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, "
            "max {max:.1f} ms".format(**burst)
        )
        print(
            "  event → sink, paced: p50 {p50:.2f} ms, p90 {p90:.2f} ms, p99 {p99:.2f} ms, "
            "max {max:.2f} ms".format(**paced),
            flush=True,
        )
    if args.json:
        benchlib.write_json(args.json, "libvirt", figures, begun)
    return 0


def libvirt_figures(result: dict[str, Any], paced: int) -> list[benchlib.Figure]:
    outbox = result["outbox"]
    name = "durable" if outbox == "sqlite" else "memory"
    events = result["events"]
    figures = [
        benchlib.Figure(
            "libvirt",
            f"libvirt.rate.{outbox}",
            f"libvirt test driver → sink, {name} outbox, {events:,} events",
            result["source_rate"],
            "events/s",
            note=f"libvirt produced {result['libvirt_rate']:,.0f}/s",
            params={k: v for k, v in result.items() if k not in ("burst", "paced")},
        )
    ]
    for point in ("p50", "p99"):
        figures.append(
            benchlib.Figure(
                "libvirt",
                f"libvirt.latency.paced.{outbox}.{point}",
                f"libvirt callback → sink, {paced} paced, {name} outbox: {point}",
                result["paced"][point],
                "ms",
                params=result["paced"],
            )
        )
    return figures


if __name__ == "__main__":
    sys.exit(main())
