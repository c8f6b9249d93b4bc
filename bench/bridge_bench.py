"""Benchmark the whole bridge: replay → engine → plugins → outbox → sink.

Builds a trace of about ``--events`` events from the recorded QEMU traces (domains renamed,
100 at a time interleaved), then runs ``virtbridge run`` on it as a separate process, once
into the ``null`` sink and once into ``jsonl`` on a file, with the in-memory and the durable
(SQLite) outbox, and reports events/s and the process's peak RSS.  Runs with a quarter of the
events too, to show whether memory grows with the number of events; ``--durable-sizes``
replaces that quarter with runs of the durable outbox into ``null`` at the sizes given (is
its peak RSS flat from 250,000 to 1,000,000 events?).

``--repeat N`` runs each configuration of the largest size N times, interleaved (memory,
durable, memory, durable, ...), and reports the median rate and the median of the paired
ratios: on a machine whose speed drifts by a third from one minute to the next, a pair run
back to back is the comparison that means something.

Usage: ``python bench/bridge_bench.py [--events 1000000] [--outbox memory|sqlite|both]
[--sinks null,jsonl] [--durable-sizes 250000,500000] [--repeat 3] [--json FILE]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib

benchlib.use_checkout()

from tests.support.bigtrace import build_trace  # noqa: E402

TRACES = benchlib.ROOT / "examples" / "traces"
WINDOW = 100
RATIO_TARGET = 0.75  # durable outbox ≥ 0.75× the in-memory rate
RSS_TARGET_MIB = 45.0  # durable peak RSS at 1,000,000 events
OUTBOX_NAMES = {"memory": "memory", "sqlite": "durable"}


def run_bridge(
    trace: Path, sink: str, workdir: Path, outbox: str, timeout: float = 600
) -> tuple[float, int, int]:
    """Run the bridge once; return (seconds, events delivered, peak RSS in KiB)."""
    sink_table = (
        '[[sinks]]\ntype = "null"\n'
        if sink == "null"
        else (f'[[sinks]]\ntype = "jsonl"\npath = "{workdir / "out.jsonl"}"\n')
    )
    state = workdir / f"state-{sink}-{outbox}-{trace.stem}"
    shutil.rmtree(state, ignore_errors=True)  # every run starts afresh (a repeat, too)
    config = workdir / f"{sink}.toml"
    config.write_text(
        f'[bridge]\noutbox = "{outbox}"\ncontrol_socket = "off"\n'
        f'state_dir = "{state}"\n'
        f'[[sources]]\ntype = "replay"\npath = "{trace}"\nprogress = false\n' + sink_table
    )
    (workdir / "out.jsonl").unlink(missing_ok=True)
    log = workdir / "bridge.log"
    with log.open("w") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            benchlib.bridge_argv(config, "-v"),
            env=benchlib.child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        status, rss = benchlib.wait_peak(process, timeout)
        elapsed = time.perf_counter() - started
    text = log.read_text(errors="replace")
    if status != 0:
        sys.exit(f"bridge failed ({status}):\n{text[-2000:]}")
    found = re.search(r"delivered (\d+) of (\d+) events", text)
    delivered = int(found.group(1)) if found else -1
    (workdir / "out.jsonl").unlink(missing_ok=True)
    return elapsed, delivered, rss


def main(argv: list[str] | None = None) -> int:
    begun = time.monotonic()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--outbox",
        choices=("memory", "sqlite", "both"),
        default="both",
        help="in-memory outbox, the durable SQLite one, or both in the same run (default)",
    )
    parser.add_argument("--sinks", default="null,jsonl", help="null, jsonl or both")
    parser.add_argument(
        "--durable-sizes",
        default="",
        metavar="N,N",
        help="instead of the quarter-size runs: the durable outbox into null at these sizes",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="runs of each configuration of the largest size, interleaved (median reported)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per bridge run")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    sinks = [sink for sink in args.sinks.split(",") if sink]
    if not set(sinks) <= {"null", "jsonl"}:
        parser.error("--sinks: null and/or jsonl")
    outboxes = ("memory", "sqlite") if args.outbox == "both" else (args.outbox,)
    plan: list[tuple[int, str, str]] = []  # (target events, sink, outbox), in order
    if args.durable_sizes:
        sizes = sorted(int(size) for size in args.durable_sizes.split(","))
        plan += [(size, "null", "sqlite") for size in sizes if size < args.events]
    else:
        plan += [(args.events // 4, sink, outbox) for sink in sinks for outbox in outboxes]
    plan += [
        (args.events, sink, outbox)
        for _ in range(max(args.repeat, 1))
        for sink in sinks
        for outbox in outboxes
    ]

    runs: dict[tuple[int, str, str], list[tuple[int, float, int]]] = {}
    figures: list[benchlib.Figure] = []
    with tempfile.TemporaryDirectory(prefix="virtbridge-bench-") as tmp:
        workdir = Path(tmp)
        header = ("events", "sink", "outbox", "seconds", "events/s", "peak RSS")
        print("{:>9} {:>6} {:>7} {:>8} {:>10} {:>12}".format(*header))
        lines = expected = 0
        for target in sorted({size for size, _, _ in plan}):
            trace = workdir / f"trace-{target}.jsonl"
            lines, expected = build_trace(trace, target)
            for size, sink, outbox in plan:
                if size != target:
                    continue
                elapsed, delivered, rss = run_bridge(trace, sink, workdir, outbox, args.timeout)
                if delivered != expected:
                    sys.exit(f"the bridge delivered {delivered} of the trace's {expected} events")
                print(
                    f"{delivered:>9} {sink:>6} {outbox:>7} {elapsed:>8.2f} "
                    f"{delivered / elapsed:>10,.0f} {rss / 1024:>8.1f} MiB",
                    flush=True,
                )
                runs.setdefault((target, sink, outbox), []).append((delivered, elapsed, rss))
            for sink in sinks:
                ratios = paired_ratios(runs, target, sink)
                if ratios:
                    print(
                        f"{'':>9} {sink:>6} durable/in-memory: {statistics.median(ratios):.2f}"
                        + (
                            f" (median of {', '.join(f'{r:.2f}' for r in ratios)})"
                            if len(ratios) > 1
                            else ""
                        )
                    )
            trace.unlink()
        print(
            f"(trace lines per event: {lines / max(expected, 1):.2f}; CPU: {os.cpu_count()} cores)"
        )
    figures += rate_figures(runs)
    figures += rss_figures(runs)
    if args.json:
        benchlib.write_json(args.json, "bridge", figures, begun)
    return 0


Runs = dict[tuple[int, str, str], list[tuple[int, float, int]]]
"""(events, sink, outbox) → (delivered, seconds, peak RSS in KiB) of each run, in order."""


def paired_ratios(runs: Runs, target: int, sink: str) -> list[float]:
    """durable/memory rate of each pair of runs made one after the other."""
    memory = runs.get((target, sink, "memory"), [])
    durable = runs.get((target, sink, "sqlite"), [])
    return [
        (d_delivered / d_seconds) / (m_delivered / m_seconds)
        for (m_delivered, m_seconds, _), (d_delivered, d_seconds, _) in zip(
            memory, durable, strict=False
        )
    ]


def rate_figures(runs: Runs) -> list[benchlib.Figure]:
    """events/s of the runs of the largest size (the smaller ones are there for the RSS):
    the median of the repeats, and for the durable outbox the median paired ratio."""
    largest = max((target for target, _, _ in runs), default=0)
    figures = []
    for (target, sink, outbox), done in runs.items():
        if target != largest:
            continue
        rates = [delivered / elapsed for delivered, elapsed, _ in done]
        rate = statistics.median(rates)
        delivered = done[0][0]
        figure = benchlib.Figure(
            "bridge",
            f"bridge.rate.{sink}.{outbox}.{target}",
            f"replay → {sink}, {OUTBOX_NAMES[outbox]} outbox, {delivered:,} events",
            rate,
            "events/s",
            params={
                "sink": sink,
                "outbox": outbox,
                "events": delivered,
                "seconds": [elapsed for _, elapsed, _ in done],
                "runs": len(done),
            },
        )
        ratios = paired_ratios(runs, target, sink)
        if outbox == "sqlite" and ratios:
            ratio = statistics.median(ratios)
            figure.note = f"durable/memory {ratio:.2f}×" + (
                f" (median of {len(ratios)} pairs)" if len(ratios) > 1 else ""
            )
            figure.target = f"≥ {RATIO_TARGET:.2f}×"
            figure.met = ratio >= RATIO_TARGET
            figure.params["ratio"] = ratio
            figure.params["ratios"] = ratios
        figures.append(figure)
    return figures


def rss_figures(runs: Runs) -> list[benchlib.Figure]:
    """Peak RSS of every configuration (the highest of its repeats): the durable runs of the
    largest size have the target, and the durable run into null of that size says how far it
    is from the smallest (flat?)."""
    results = {
        key: (done[0][0], done[0][1], max(rss for _, _, rss in done)) for key, done in runs.items()
    }
    largest = max((target for target, _, _ in results), default=0)
    durable_null = sorted(
        (target, rss)
        for (target, sink, outbox), (_, _, rss) in results.items()
        if (sink, outbox) == ("null", "sqlite")
    )
    figures = []
    order = sorted(results, key=lambda k: ((k[1], k[2]) != ("null", "sqlite"), k[1], k[2], k[0]))
    for target, sink, outbox in order:
        delivered, _, rss = results[(target, sink, outbox)]
        mib = rss / 1024
        figure = benchlib.Figure(
            "bridge",
            f"bridge.peak_rss.{sink}.{outbox}.{target}",
            f"peak RSS, replay → {sink}, {OUTBOX_NAMES[outbox]}, {delivered:,} events",
            mib,
            "MiB",
            params={"sink": sink, "outbox": outbox, "events": delivered},
        )
        if outbox == "sqlite" and target == largest:
            figure.target = f"≤ {RSS_TARGET_MIB:g} MiB"
            figure.met = mib <= RSS_TARGET_MIB
            if sink == "null" and len(durable_null) > 1:
                growth = mib - durable_null[0][1] / 1024
                figure.note = f"{growth:+.1f} MiB from {durable_null[0][0]:,} events"
                figure.params["growth_mib"] = growth
        figures.append(figure)
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
