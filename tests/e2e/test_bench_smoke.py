"""The benchmarks run: ``bench/run_all.py --quick`` fills every section of its JSON with
figures.  No timing is asserted; the sizes of a quick run are too small to mean anything."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bridge import child_env
from tests.support.brokers import MOSQUITTO, NATS_SERVER, require_binary
from tests.support.libvirtd import require_binding

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("engine", "bridge", "latency", "bus", "libvirt", "memory")


@pytest.mark.timeout(90)
def test_every_benchmark_runs_and_reports_figures(tmp_path: Path) -> None:
    require_binary(MOSQUITTO, "mosquitto")
    require_binary(NATS_SERVER, "nats-server")
    require_binary(("qemu-system-x86_64",), "qemu-system-x86")
    require_binding()
    out = tmp_path / "bench.json"

    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--json", str(out)],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert {"cpu", "cores", "python", "date", "commit"} <= set(report["machine"])
    assert [step["error"] for step in report["steps"]] == [""] * len(report["steps"])
    for section in SECTIONS:
        figures = report["sections"][section]
        assert figures, f"no figures in section {section}"
        for figure in figures:
            value = figure["value"]
            assert isinstance(value, (int, float)) and math.isfinite(value), figure
            assert value > 0, figure
            assert figure["key"] and figure["label"] and figure["unit"], figure
    keys = [figure["key"] for section in SECTIONS for figure in report["sections"][section]]
    assert len(keys) == len(set(keys)), "figure keys repeat"
    assert "section" in done.stdout and "engine alone" in done.stdout  # the table
