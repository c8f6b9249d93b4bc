"""Benchmark the memory of a running bridge per idle domain.

Two ``virtbridge run`` processes with the durable outbox and the ``null`` sink: one with an
``idle`` source (``pace_plugin.py``) that starts and resumes ``--domains`` domains and then
says nothing, one with ``idle`` of 0 domains.  Once every domain runs and the sink has caught
up, each process's RSS is read (several times over ``--settle`` seconds, the largest reading);
the figure is (RSS(N) − RSS(0)) / N: the engine's state, the outbox's per-domain rows and
whatever the runtime keeps per domain.  The outbox's in-memory window of recent events is
bounded by ``outbox_window`` (set to ``--window`` in both processes, so it is not counted as
a per-domain cost; the default window is 50,000 events).

(The memory per watched QMP monitor is ``qmp_bench.py --fake``'s second part.)

Usage: ``python bench/memory_bench.py [--domains 10000] [--settle 2] [--window 1000]
[--json FILE]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib

benchlib.use_checkout()

from tests.support.bridge import toml  # noqa: E402

PACE = benchlib.BENCH / "pace_plugin.py"


def idle_rss(workdir: Path, domains: int, settle: float, window: int, timeout: float) -> int:
    """RSS (KiB) of a bridge with ``domains`` idle domains, once they all run."""
    name = f"idle-{domains}"
    ready = workdir / f"{name}.ready"
    config = workdir / f"{name}.toml"
    bridge = {
        "state_dir": str(workdir / f"state-{name}"),
        "control_socket": "off",
        "outbox": "sqlite",
        "outbox_window": window,
    }
    config.write_text(
        toml(bridge, [{"type": "idle", "count": domains, "ready": str(ready)}], [{"type": "null"}])
    )
    log = workdir / f"{name}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            benchlib.bridge_argv(config, "--plugin", str(PACE)),
            env=benchlib.child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + timeout
            while not ready.exists():
                if process.poll() is not None:
                    raise SystemExit(
                        f"the bridge stopped ({process.returncode}):\n{benchlib.tail(log)}"
                    )
                if time.monotonic() > deadline:
                    raise SystemExit(f"{domains} idle domains not started in {timeout:.0f} s")
                time.sleep(0.05)
            readings = []
            end = time.monotonic() + settle
            while time.monotonic() < end:
                time.sleep(settle / 8)
                readings.append(benchlib.rss_kib(process.pid))
        finally:
            status = benchlib.stop(process)
    if status != 0:
        raise SystemExit(f"the bridge exited with {status}:\n{benchlib.tail(log)}")
    return max(readings[len(readings) // 2 :])  # after the sink has caught up


def main(argv: list[str] | None = None) -> int:
    begun = time.monotonic()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds of RSS readings")
    parser.add_argument("--window", type=int, default=1000, help="outbox_window of both")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="virtbridge-memory-") as tmp:
        workdir = Path(tmp)
        base = idle_rss(workdir, 0, args.settle, args.window, args.timeout)
        full = idle_rss(workdir, args.domains, args.settle, args.window, args.timeout)
    per_domain = (full - base) / args.domains
    print(f"bridge with no domain: RSS {base / 1024:.1f} MiB")
    print(f"bridge with {args.domains:,} idle domains: RSS {full / 1024:.1f} MiB")
    print(f"per idle domain: {per_domain:.2f} KiB")
    figures = [
        benchlib.Figure(
            "memory",
            "memory.rss_per_idle_domain",
            f"bridge RSS per idle domain ({args.domains:,} domains, durable outbox)",
            per_domain,
            "KiB",
            note=f"{base / 1024:.1f} → {full / 1024:.1f} MiB",
            params={"domains": args.domains, "base_rss_kib": base, "rss_kib": full},
        ),
        benchlib.Figure(
            "memory",
            "memory.rss_idle_bridge",
            "bridge RSS with no domain (durable outbox, null sink)",
            base / 1024,
            "MiB",
        ),
    ]
    if args.json:
        benchlib.write_json(args.json, "memory", figures, begun)
    return 0


if __name__ == "__main__":
    sys.exit(main())
