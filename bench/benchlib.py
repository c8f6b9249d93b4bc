"""What the benchmarks share: this checkout's code first on the path (also for the processes
they start), figures with a stable key for the JSON that ``run_all.py`` collects, percentiles,
RSS readings, and clear errors for missing programs.

A script writes its figures with ``--json FILE``::

    {"benchmark": "bridge", "seconds": 93.1, "figures": [
        {"section": "bridge", "key": "bridge.rate.null.sqlite.1000084", "label": "...",
         "value": 57268.0, "unit": "events/s", "note": "durable/memory 0.53×",
         "target": "≥ 0.75×", "met": false, "params": {...}}, ...]}
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCES = (ROOT / "core", ROOT / "plugins", ROOT)
BENCH = ROOT / "bench"


def use_checkout() -> None:
    """Import virtbridge, its plugins and ``tests.support`` from this checkout."""
    for path in reversed(SOURCES):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this checkout's code before anything installed."""
    paths = [str(path) for path in SOURCES]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def bridge_argv(config: Path, *extra: str) -> list[str]:
    """``virtbridge run -c CONFIG`` with this interpreter."""
    return [sys.executable, "-m", "virtbridge", "run", "-c", str(config), *extra]


# -- figures --------------------------------------------------------------------------------------


@dataclass
class Figure:
    section: str
    """Where ``run_all.py`` shows it: engine, bridge, latency, bus, libvirt, memory."""
    key: str
    """Stable across runs, to compare two JSON files."""
    label: str
    value: float
    unit: str
    note: str = ""
    """A comparison with another figure of the same run (``durable/memory 0.53×``)."""
    target: str = ""
    """The project's target for this figure, if it has one (``≥ 0.75×``)."""
    met: bool | None = None
    """Whether the figure meets ``target`` (reported, never asserted)."""
    params: dict[str, Any] = field(default_factory=dict)


def write_json(path: str | Path, benchmark: str, figures: Sequence[Figure], started: float) -> None:
    document = {
        "benchmark": benchmark,
        "seconds": round(time.monotonic() - started, 2),
        "figures": [asdict(figure) for figure in figures],
    }
    Path(path).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def percentiles(values: Iterable[float], points: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """``{"p50": ..., "p99": ..., "max": ...}`` of ``values`` (inclusive method)."""
    ordered = sorted(values)
    if not ordered:
        return {}
    if len(ordered) == 1:
        return {**{f"p{point}": ordered[0] for point in points}, "max": ordered[0]}
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {**{f"p{point}": cut[point - 1] for point in points}, "max": ordered[-1]}


# -- processes ------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """The resident set size of a running process, in KiB (0 once it has gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_peak(process: subprocess.Popen[Any], timeout: float) -> tuple[int, int]:
    """Wait for ``process`` (at most ``timeout`` seconds, then kill it and fail); return its
    exit status and peak RSS in KiB (``ru_maxrss`` of that one child)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, int(usage.ru_maxrss)
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise SystemExit(f"{describe(process.args)} did not finish within {timeout:.0f} s")
        time.sleep(0.005)


def describe(argv: Any) -> str:
    if isinstance(argv, (list, tuple)):
        words = [
            Path(str(word)).name if index < 2 else str(word) for index, word in enumerate(argv)
        ]
        return " ".join(words[:6]) + (" ..." if len(words) > 6 else "")
    return str(argv)


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion with its output captured; a failure or a timeout ends the
    benchmark with what the command said."""
    try:
        result = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SystemExit(f"{describe(argv)} did not finish within {timeout:.0f} s") from exc
    if result.returncode != 0:
        raise SystemExit(
            f"{describe(argv)} failed with status {result.returncode}:\n{result.stderr[-3000:]}"
        )
    return result


def stop(process: subprocess.Popen[Any], timeout: float = 30.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return int(process.returncode)


def tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# -- programs the benchmarks need -----------------------------------------------------------------

PROGRAMS = {
    "mosquitto": (("mosquitto", "/usr/sbin/mosquitto"), "mosquitto"),
    "nats-server": (("nats-server", "/usr/sbin/nats-server"), "nats-server"),
    "qemu-system-x86_64": (("qemu-system-x86_64",), "qemu-system-x86"),
}


def need_program(name: str) -> str:
    """The path of a program a benchmark starts, or a clear error naming the package."""
    candidates, package = PROGRAMS[name]
    for candidate in candidates:
        found = shutil.which(candidate) or (
            candidate if os.path.isabs(candidate) and os.access(candidate, os.X_OK) else None
        )
        if found:
            return found
    raise SystemExit(
        f"{name} is not installed (Debian: apt-get install {package}; or run ./dev setup)"
    )


def need_module(module: str, extra: str) -> None:
    """A Python library a benchmark uses, or a clear error naming the extra that installs it."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise SystemExit(
            f"the Python module {module!r} is missing: pip install -e '.[{extra}]' "
            "(or run ./dev setup)"
        )
