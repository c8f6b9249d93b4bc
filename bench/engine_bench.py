"""Benchmark the lifecycle engine alone: signals per second and memory per domain.

Feeds recorded QEMU traces (``examples/traces/*.jsonl``) for N domains at once, interleaved
round-robin so every domain is mid-scenario at the same time, and reports:

* signals/s and ns per signal on one core, for N = 10 ... 100,000 domains (the cost per
  signal should not grow with N);
* bytes of Python heap per tracked idle (running) domain.

Usage: ``python bench/engine_bench.py [--signals 500000] [--domains 10,100,...]
[--order round-robin|bursts|both] [--idle-domains 10000] [--json FILE]``
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
from pathlib import Path

import benchlib

benchlib.use_checkout()

import msgspec  # noqa: E402

from virtbridge import Engine, Intent, IntentKind, QmpEvent, Signal  # noqa: E402
from virtbridge.wire.trace import parse_line  # noqa: E402

ROOT = benchlib.ROOT
TRACES = Path(os.environ.get("VIRTBRIDGE_BENCH_TRACES", ROOT / "examples" / "traces"))


def load_scenarios() -> list[list[Signal]]:
    """Each trace file's signals, grouped by domain: one scenario per (file, domain)."""
    scenarios: list[list[Signal]] = []
    for path in sorted(TRACES.glob("*.jsonl")):
        if path.name == "mixed.jsonl":
            continue  # made of the others
        by_domain: dict[str, list[Signal]] = {}
        for line in path.read_text().splitlines():
            signal = parse_line(line)
            if signal is not None:
                by_domain.setdefault(signal.domain, []).append(signal)
        scenarios.extend(by_domain.values())
    if not scenarios:
        sys.exit(f"no traces found under {TRACES}")
    return scenarios


def build(
    scenarios: list[list[Signal]], domains: int, total: int, order: str = "round-robin"
) -> tuple[list[Signal], list[Signal]]:
    """Signals for ``domains`` domains: an untimed warm-up that puts domain i at a staggered
    point of its scenario, then ``total`` measured signals round-robin over all domains, so
    the measured mix is the same whatever the number of domains."""
    scripts = []
    for i in range(domains):
        script = scenarios[i % len(scenarios)]
        name = f"vm-{i}"
        scripts.append([msgspec.structs.replace(s, domain=name) for s in script])
    warmup: list[Signal] = []
    position = []
    for i, script in enumerate(scripts):
        offset = (i * 7) % len(script)
        warmup.extend(script[:offset])
        position.append(offset)
    measured: list[Signal] = []
    burst = 1 if order == "round-robin" else 16  # bursts: a domain's next 16 signals at once
    while len(measured) < total:
        for i, script in enumerate(scripts):
            for _ in range(burst):
                measured.append(script[position[i] % len(script)])
                position[i] += 1
            if len(measured) >= total:
                break
    return warmup, measured[:total]


def run(warmup: list[Signal], signals: list[Signal]) -> tuple[float, int]:
    engine = Engine()
    feed = engine.feed
    for signal in warmup:
        feed(signal)
    gc.collect()
    started = time.perf_counter()
    events = 0
    for signal in signals:
        events += len(feed(signal).events)
    return time.perf_counter() - started, events


def bytes_per_idle_domain(count: int) -> float:
    engine = Engine()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(count):
        name = f"vm-{i:06d}"
        engine.feed(
            Intent(
                domain=name, intent=IntentKind.START, uuid=f"{i:08d}-0000-4000-8000-000000000000"
            )
        )
        engine.feed(QmpEvent(domain=name, event="RESUME"))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(engine) == count
    return grown / count


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--signals", type=int, default=500_000, help="signals per measurement")
    parser.add_argument("--domains", default="10,100,1000,10000,100000", help="domain counts")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument(
        "--idle-domains", type=int, default=10_000, help="domains for the memory figure"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--order",
        choices=("round-robin", "bursts", "both"),
        default="both",
        help="round-robin: every signal for another domain (the worst case for CPU caches); "
        "bursts: 16 signals of one domain at a time",
    )
    args = parser.parse_args(argv)
    scenarios = load_scenarios()
    print(f"scenarios: {len(scenarios)} recorded (file, domain) scripts from {TRACES}")
    row = "{:>11} {:>8} {:>9} {:>9} {:>11} {:>10}"
    print(row.format("order", "domains", "signals", "events", "signals/s", "ns/signal"))
    orders = ("round-robin", "bursts") if args.order == "both" else (args.order,)
    figures: list[benchlib.Figure] = []
    for order, domains in [(o, int(n)) for o in orders for n in args.domains.split(",")]:
        warmup, signals = build(scenarios, domains, args.signals, order)
        best = min(run(warmup, signals) for _ in range(args.repeat))
        elapsed, events = best
        rate = f"{len(signals) / elapsed:,.0f}"
        cost = f"{elapsed / len(signals) * 1e9:.0f}"
        print(row.format(order, domains, len(signals), events, rate, cost))
        figures.append(
            benchlib.Figure(
                "engine",
                f"engine.rate.{order}.{domains}",
                f"engine alone, {domains:,} domains ({order})",
                len(signals) / elapsed,
                "signals/s",
                params={"order": order, "domains": domains, "signals": len(signals)},
            )
        )
        del warmup, signals
    per_domain = bytes_per_idle_domain(args.idle_domains)
    print(
        f"memory: {per_domain:,.0f} bytes per idle (running) domain, measured over "
        f"{args.idle_domains:,} domains"
    )
    figures.append(
        benchlib.Figure(
            "memory",
            "engine.heap_per_idle_domain",
            f"engine heap per idle domain ({args.idle_domains:,} domains, tracemalloc)",
            per_domain,
            "bytes",
            params={"domains": args.idle_domains},
        )
    )
    if args.json:
        benchlib.write_json(args.json, "engine", figures, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
