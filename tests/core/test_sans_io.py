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
ALLOWED_DATETIME = {"_model_time.py"}  # formats a given timestamp; never reads the clock
ENGINE_MODULES = ("_engine", "_model", "_signals", "_state", "_transitions", "_trace")


def test_engine_modules_import_nothing_with_side_effects() -> None:
    root = Path(virtbridge.__file__).parent
    checked = 0
    for path in sorted(root.glob("_*.py")):
        if not path.name.startswith(ENGINE_MODULES):
            continue
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
    source = (Path(virtbridge.__file__).parent / "_model_time.py").read_text()
    for call in (".now(", ".utcnow(", ".today(", "time.time(", "monotonic("):
        assert call not in source
