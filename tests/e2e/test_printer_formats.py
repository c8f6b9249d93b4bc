"""``virtbridge run`` (no configuration) and ``virtbridge replay`` print libvirt's formats.

The fixtures under ``fixtures/`` were written from the reference's format strings and string
tables (libvirt-lifecycle.md §3), not produced by virtbridge.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "examples" / "traces"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def virtbridge(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "virtbridge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env=env,
    )


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.txt")), ids=lambda p: p.stem)
def test_replay_matches_the_reference_format(fixture: Path) -> None:
    scenario, style = fixture.stem.rsplit(".", 1)
    result = virtbridge("replay", str(TRACES / f"{scenario}.jsonl"), "--format", style)
    assert result.returncode == 0, result.stderr
    assert result.stdout == fixture.read_text()


def test_run_without_configuration_replays_the_bundled_traces(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path), "HOME": str(tmp_path)}
    env.pop("VIRTBRIDGE_CONFIG", None)
    result = virtbridge("run", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The first bundled trace is the seed's sequence: an ACPI shutdown request, the guest
    # shutting down, the process exiting; and never a "Suspended" in between.
    name = "vm-acpi-shutdown"
    assert lines[:10] == [
        f"myDomainEventCallback{n} EVENT: Domain {name}(1) {text}"
        for text in (
            "Resumed Unpaused",
            "Started Booted",
            "Shutdown Requested",
            "Shutdown On guest request",
            "Stopped Shutdown",
        )
        for n in (1, 2)
    ]
    expected = virtbridge(
        "replay", *sorted(str(p) for p in TRACES.glob("*.jsonl")), "--format", "python"
    )
    assert result.stdout == expected.stdout
    assert len(lines) > 300
    for scenario in ("poweroff", "panic-restart", "save-restore", "kill-sigkill"):
        assert any(f"Domain vm-{scenario}(" in line for line in lines), scenario
