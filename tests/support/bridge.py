"""Run ``virtbridge`` as its users do: a process with a TOML configuration file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TESTKIT = "tests.plugins.testkit_plugin"


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child ``virtbridge``: this checkout's code, whatever is installed."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, SOURCES)), **extra}


SOURCES = (ROOT / "core", ROOT / "plugins", ROOT)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml(
    bridge: Mapping[str, Any],
    sources: Sequence[Mapping[str, Any]] = (),
    sinks: Sequence[Mapping[str, Any]] = (),
) -> str:
    lines = ["[bridge]", *(f"{key} = {_value(value)}" for key, value in bridge.items())]
    for kind, tables in (("sources", sources), ("sinks", sinks)):
        for table in tables:
            lines.append(f"[[{kind}]]")
            lines += [f"{key} = {_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def write_config(
    path: Path,
    *,
    state_dir: Path,
    sources: Sequence[Mapping[str, Any]],
    sinks: Sequence[Mapping[str, Any]],
    **bridge: Any,
) -> Path:
    settings = {"state_dir": str(state_dir), "control_socket": "off", "drain_timeout": 5.0}
    settings.update(bridge)
    path.write_text(toml(settings, sources, sinks))
    return path


def spawn(config: Path, *extra: str, stdout: Any = subprocess.DEVNULL) -> subprocess.Popen[str]:
    """``virtbridge run -c CONFIG`` with the test plugins importable."""
    return subprocess.Popen(
        [sys.executable, "-m", "virtbridge", "run", "-c", str(config), "--plugin", TESTKIT, *extra],
        cwd=config.parent,
        env=child_env(),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def virtbridge(
    *args: str, timeout: float = 60, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a ``virtbridge`` command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "virtbridge", *args],
        check=False,
        cwd=ROOT,
        env=child_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
