"""Run every benchmark and print one table (``./dev bench``).

Each benchmark script runs as its own process with ``--json`` and sizes chosen so that the
whole run takes less than ten minutes on a 2-core machine (``--quick``: a smoke run of well
under a minute, whose figures mean little).  Every step has a time limit; a step that fails
(a broker or QEMU missing, a bridge that does not start) is reported with the reason and the
others still run.  What the scripts and the brokers they start print goes to files, shown
only when a step fails.

Sections of the table:

* engine  — ``engine_bench.py``: the engine alone, signals/s at 10 / 1,000 / 100,000 domains;
* bridge  — ``bridge_bench.py``: ``virtbridge run`` replaying into null and jsonl, memory vs
  durable outbox at 1,000,000 events (three interleaved pairs: the median), and the durable
  outbox's peak RSS at 250,000, 500,000 and 1,000,000 events;
* latency — ``latency_bench.py``: QEMU's timestamp (a fake QMP monitor) → each sink at
  1,000 events/s, durable outbox, ``outbox_sync`` normal and full; ``qmp_bench.py``: the same
  from real QEMU guests to a jsonl file;
* bus     — ``bus_bench.py``: each bus sink against the plain client loop on the same broker:
  the whole ``virtbridge run`` process against the plain publisher process, and latency to a
  subscriber at 1,000 events/s;
* libvirt — ``libvirt_bench.py``: the libvirt source on libvirt's test driver;
* memory  — ``memory_bench.py``: RSS per idle domain; ``qmp_bench.py``: RSS per watched QMP
  monitor; ``engine_bench.py``: the engine's heap per idle domain.

Targets are reported next to their figures, never asserted.

Usage: ``python bench/run_all.py [--quick] [--json FILE] [--compare OLD.json]
[--only STEP,...]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchlib

SECTIONS = ("engine", "bridge", "latency", "bus", "libvirt", "memory")


@dataclass(frozen=True)
class Step:
    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    limit: float
    """Seconds the full run may take (the quick run: a quarter, at least 60)."""


STEPS = (
    Step(
        "engine",
        "engine_bench.py",
        ("--signals", "300000", "--domains", "10,1000,100000", "--order", "round-robin"),
        ("--signals", "10000", "--domains", "10,1000,100000", "--order", "round-robin",
         "--repeat", "1", "--idle-domains", "1000"),
        120,
    ),
    Step(
        "bridge",
        "bridge_bench.py",
        ("--events", "1000000", "--durable-sizes", "250000,500000", "--repeat", "3"),
        ("--events", "20000", "--durable-sizes", "5000,10000"),
        420,
    ),
    Step(
        "latency",
        "latency_bench.py",
        ("--events", "5000", "--rate", "1000"),
        ("--events", "100", "--rate", "1000", "--sync", "normal", "--settle", "0.2"),
        240,
    ),
    Step(
        "bus",
        "bus_bench.py",
        ("--events", "100000", "--rate", "1000", "--latency-events", "3000"),
        ("--events", "1000", "--rate", "1000", "--latency-events", "100"),
        300,
    ),
    Step(
        "libvirt",
        "libvirt_bench.py",
        ("--count", "10000", "--paced", "200"),
        ("--count", "200", "--paced", "10"),
        120,
    ),
    Step(
        "qmp",
        "qmp_bench.py",
        ("--guests", "2", "--cycles", "60", "--monitors", "200", "--fake", "--idle", "3"),
        ("--guests", "1", "--cycles", "5", "--outbox", "sqlite", "--monitors", "100", "--fake",
         "--idle", "0.5"),
        120,
    ),
    Step(
        "memory",
        "memory_bench.py",
        ("--domains", "20000"),
        ("--domains", "2000", "--settle", "0.5"),
        120,
    ),
)  # fmt: skip


# -- running the steps --------------------------------------------------------------------------


def run_step(step: Step, quick: bool, workdir: Path) -> dict[str, Any]:
    """Run one script; its figures, or the reason it has none."""
    out = workdir / f"{step.name}.json"
    log = workdir / f"{step.name}.log"
    arguments = step.quick if quick else step.full
    limit = max(step.limit / 4, 60.0) if quick else step.limit
    argv = [sys.executable, str(benchlib.BENCH / step.script), *arguments, "--json", str(out)]
    started = time.monotonic()
    error = ""
    with log.open("w") as output:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env=benchlib.child_env(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the brokers and bridges it starts go with it
        )
        try:
            status = process.wait(limit)
        except subprocess.TimeoutExpired:
            end_group(process)
            status = None
            error = f"did not finish within {limit:.0f} s"
    seconds = time.monotonic() - started
    text = benchlib.tail(log, 4000).rstrip()
    if status is not None and status != 0:
        error = last_words(text) or f"exited with status {status}"
    figures: list[dict[str, Any]] = []
    if not error:
        try:
            figures = list(json.loads(out.read_text())["figures"])
        except (OSError, ValueError, KeyError) as exc:
            error = f"wrote no figures ({exc})"
    return {
        "name": step.name,
        "script": f"bench/{step.script}",
        "arguments": list(arguments),
        "seconds": round(seconds, 2),
        "error": error,
        "output": text if error else "",
        "figures": figures,
    }


def end_group(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the step's process group, SIGKILL to what is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            if sig == signal.SIGTERM:
                time.sleep(0.5)  # children may still be ending
        except subprocess.TimeoutExpired:
            continue


def last_words(text: str) -> str:
    """The reason a script gave when it stopped: its last non-empty line (a traceback's
    last line is the exception)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


# -- the machine --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        text = (done.stdout or done.stderr).strip()
        return text.splitlines()[0] if text else ""

    cpu = ""
    memory_mib = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_mib = int(line.split()[1]) // 1024
    except OSError:
        pass
    git = ["git", "-C", str(benchlib.ROOT)]
    commit = first_line([*git, "rev-parse", "HEAD"])
    changed = first_line([*git, "status", "--porcelain", "--untracked-files=no"])
    programs = {}
    for name in ("mosquitto", "nats-server", "qemu-system-x86_64"):
        try:
            path = benchlib.need_program(name)
        except SystemExit:
            continue
        flag = "-h" if name == "mosquitto" else "--version"
        programs[name] = first_line([path, flag])
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_mib": memory_mib,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit if len(commit) == 40 else "unknown",
        "uncommitted_changes": bool(changed),
        "programs": programs,
    }


# -- the table ------------------------------------------------------------------------------------


def number(value: float, unit: str) -> str:
    if unit in ("events/s", "signals/s", "bytes"):
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return f"{value:,.2f}" if value < 100 else f"{value:,.1f}"


def remark(figure: dict[str, Any]) -> str:
    note = figure.get("note") or ""
    target = figure.get("target") or ""
    if target:
        met = figure.get("met")
        verdict = "" if met is None else (": met" if met else ": not met")
        note = f"{note} (target {target}{verdict})".strip()
    return note


def table(steps: list[dict[str, Any]], previous: dict[str, float] | None) -> str:
    rows: list[tuple[str, ...]] = []
    header: tuple[str, ...] = ("section", "figure", "value", "unit")
    if previous is not None:
        header += ("before", "change")
    header += ("ratio / target",)
    by_section: dict[str, list[dict[str, Any]]] = {section: [] for section in SECTIONS}
    for step in steps:
        for figure in step["figures"]:
            by_section.setdefault(figure["section"], []).append(figure)
    errors = {step["name"]: step["error"] for step in steps if step["error"]}
    for section, figures in by_section.items():
        for figure in figures:
            value, unit = float(figure["value"]), str(figure["unit"])
            row: tuple[str, ...] = (section, figure["label"], number(value, unit), unit)
            if previous is not None:
                old = previous.get(figure["key"])
                if old is None:
                    row += ("", "")
                else:
                    change = f"{(value - old) / old * 100:+.0f} %" if old else ""
                    row += (number(old, unit), change)
            rows.append((*row, remark(figure)))
    for name, error in errors.items():
        rows.append((name, f"FAILED: {error}", "", "", *([""] * (len(header) - 4))))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    right = {2, 4, 5}  # numbers
    lines = []
    rule = "  ".join("-" * width for width in widths) + "  " + "-" * 14
    for index, row in enumerate([header, *rows]):
        if index == 1:
            lines.append(rule)
        elif index > 1 and row[0] != rows[index - 2][0]:
            lines.append("")
        cells = [
            cell.rjust(widths[i]) if i in right and index else cell.ljust(widths[i])
            for i, cell in enumerate(row[:-1])
        ]
        lines.append(("  ".join(cells) + "  " + row[-1]).rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    begun = time.monotonic()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--json", metavar="FILE", help="write the figures and the machine")
    parser.add_argument("--compare", metavar="OLD", help="a JSON file of an earlier run")
    parser.add_argument(
        "--only", metavar="STEP,...", help=f"some of {', '.join(s.name for s in STEPS)}"
    )
    args = parser.parse_args(argv)
    steps = list(STEPS)
    if args.only:
        wanted = set(args.only.split(","))
        if unknown := wanted - {step.name for step in steps}:
            parser.error(f"--only: unknown step {', '.join(sorted(unknown))}")
        steps = [step for step in steps if step.name in wanted]
    previous = None
    if args.compare:
        old = json.loads(Path(args.compare).read_text())
        previous = {
            figure["key"]: float(figure["value"])
            for section in old["sections"].values()
            for figure in section
        }
    host = machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="virtbridge-bench-all-") as tmp:
        for step in steps:
            print(f"bench: {step.name} ({step.script}) ...", file=sys.stderr, flush=True)
            result = run_step(step, args.quick, Path(tmp))
            outcome = f"FAILED: {result['error']}" if result["error"] else "done"
            print(
                f"bench: {step.name}: {outcome} in {result['seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            if result["error"] and result["output"]:
                print(result["output"][-2000:], file=sys.stderr)
            results.append(result)
    seconds = time.monotonic() - begun
    commit = host["commit"][:12] + (" + uncommitted changes" if host["uncommitted_changes"] else "")
    print(
        f"virtbridge benchmarks{' (--quick: sizes too small to mean much)' if args.quick else ''}"
        f"\n{host['cpu']}, {host['cores']} cores, {host['memory_mib']:,} MiB; "
        f"Python {host['python']}; {host['date']}; commit {commit}\n"
    )
    print(table(results, previous))
    print(f"\n{seconds / 60:.1f} minutes ({seconds:.0f} s)")
    if args.json:
        sections: dict[str, list[dict[str, Any]]] = {section: [] for section in SECTIONS}
        for result in results:
            for figure in result["figures"]:
                sections.setdefault(figure["section"], []).append(figure)
        document = {
            "machine": host,
            "quick": args.quick,
            "seconds": round(seconds, 1),
            "steps": [{k: v for k, v in r.items() if k != "figures"} for r in results],
            "sections": sections,
        }
        Path(args.json).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return 1 if any(result["error"] for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
