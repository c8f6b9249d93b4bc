"""The engine stays sans-I/O: its modules import no I/O, clock, logging or broker library."""

from __future__ import annotations

import ast
from pathlib import Path

import virtbridge

FORBIDDEN = {
    "asyncio",
    "socket",
    "logging",
    "time",
    "paho",
    "nats",
    "libvirt",
    "sqlite3",
    "os",
    "subprocess",
    "threading",
    "selectors",
    "random",
    "datetime",
}
ALLOWED_DATETIME = {"time.py"}  # formats a given timestamp; never reads the clock
ROOT = Path(virtbridge.__file__).parent


def engine_modules() -> list[Path]:
    """The engine package, and the trace format it is tested through."""
    return [*sorted((ROOT / "engine").glob("*.py")), ROOT / "wire" / "trace.py"]


def test_engine_modules_import_nothing_with_side_effects() -> None:
    checked = 0
    for path in engine_modules():
        checked += 1
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "datetime" and path.name in ALLOWED_DATETIME:
                    continue
                assert top not in FORBIDDEN, f"{path.name} imports {name}"
    assert checked >= 12


def test_model_time_never_reads_the_clock() -> None:
    source = (ROOT / "engine" / "time.py").read_text()
    for call in (".now(", ".utcnow(", ".today(", "time.time(", "monotonic("):
        assert call not in source
