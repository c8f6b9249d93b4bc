"""Benchmark the whole bridge: replay → engine → plugins → outbox → sink.

Builds a trace of about ``--events`` events from the recorded QEMU traces (domains renamed,
100 at a time interleaved), then runs ``virtbridge run`` on it as a separate process, once
into the ``null`` sink and once into ``jsonl`` on a file, and reports events/s and the
process's peak RSS.  Runs with a quarter of the events too, to show whether memory grows
with the number of events.

Usage: ``python bench/bridge_bench.py [--events 1000000] [--outbox memory|sqlite]``
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.bigtrace import build_trace  # noqa: E402

TRACES = ROOT / "examples" / "traces"
WINDOW = 100


def run_bridge(trace: Path, sink: str, workdir: Path, outbox: str) -> tuple[float, int, int]:
    """Run the bridge once; return (seconds, events delivered, peak RSS in KiB)."""
    sink_table = (
        '[[sinks]]\ntype = "null"\n'
        if sink == "null"
        else (f'[[sinks]]\ntype = "jsonl"\npath = "{workdir / "out.jsonl"}"\n')
    )
    config = workdir / f"{sink}.toml"
    config.write_text(
        f'[bridge]\noutbox = "{outbox}"\ncontrol_socket = "off"\n'
        f'state_dir = "{workdir / f"state-{sink}-{trace.stem}"}"\n'
        f'[[sources]]\ntype = "replay"\npath = "{trace}"\nprogress = false\n' + sink_table
    )
    (workdir / "out.jsonl").unlink(missing_ok=True)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "virtbridge", "run", "-v", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"bridge failed ({result.returncode}):\n{result.stderr[-2000:]}")
    found = re.search(r"delivered (\d+) of (\d+) events", result.stderr)
    delivered = int(found.group(1)) if found else -1
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, delivered, rss


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="virtbridge-bench-") as tmp:
        workdir = Path(tmp)
        header = ("events", "sink", "outbox", "seconds", "events/s", "peak RSS")
        print("{:>9} {:>6} {:>7} {:>8} {:>10} {:>12}".format(*header))
        for target in (args.events // 4, args.events):
            trace = workdir / f"trace-{target}.jsonl"
            lines, expected = build_trace(trace, target)
            outboxes = ("memory", "sqlite") if args.outbox == "both" else (args.outbox,)
            rates: dict[str, float] = {}
            for outbox, sink in [(o, s) for s in ("null", "jsonl") for o in outboxes]:
                # RUSAGE_CHILDREN keeps the maximum over all children: one fresh helper per run.
                here = str(Path(__file__).parent)
                code = (
                    f"import sys; sys.path.insert(0, {here!r}); import bridge_bench as b; "
                    "from pathlib import Path; "
                    f"print(*b.run_bridge(Path({str(trace)!r}), {sink!r}, Path({str(workdir)!r}), "
                    f"{outbox!r}))"
                )
                out = subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True
                )
                elapsed_s, delivered_s, rss_s = out.stdout.split()
                elapsed, delivered, rss = float(elapsed_s), int(delivered_s), int(rss_s)
                assert delivered == expected, (delivered, expected)
                print(
                    f"{delivered:>9} {sink:>6} {outbox:>7} {elapsed:>8.2f} "
                    f"{delivered / elapsed:>10,.0f} {rss / 1024:>8.1f} MiB"
                )
                rates[f"{sink}/{outbox}"] = delivered / elapsed
            for sink in ("null", "jsonl"):
                if f"{sink}/sqlite" in rates and f"{sink}/memory" in rates:
                    ratio = rates[f"{sink}/sqlite"] / rates[f"{sink}/memory"]
                    print(f"{'':>9} {sink:>6} durable/in-memory: {ratio:.2f}")
            trace.unlink()
        print(f"(trace lines per event: {lines / expected:.2f}; CPU: {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
