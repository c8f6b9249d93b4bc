"""Plugins given as ``.py`` files: two files with one name are two plugins; one file named
twice is one plugin."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from virtbridge.config.load import load
from virtbridge.runtime.bridge import Bridge

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "examples" / "traces" / "poweroff.jsonl"

HOOK = '''\
"""A local plugin: counts its loads, sees every event, and offers a sink type."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import virtbridge

LABEL = {label!r}
OUT = Path({out!r})
with (OUT / f"{{LABEL}}.loads").open("a") as stream:
    stream.write("loaded\\n")


@virtbridge.hookimpl
def virtbridge_on_event(event: virtbridge.Event) -> None:
    with (OUT / f"{{LABEL}}.on_event").open("a") as stream:
        stream.write(event.domain.name + "\\n")


class Config(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    pass


class Sink(virtbridge.Sink):
    def __init__(self, config: Config, ctx: virtbridge.SinkContext) -> None:
        pass

    async def publish(self, records: Sequence[virtbridge.Record]) -> None:
        with (OUT / f"{{LABEL}}.sink").open("a") as stream:
            stream.writelines(f"{{record.seq}}\\n" for record in records)


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[Config]]:
    return [virtbridge.SinkType(f"sink-{{LABEL}}", Config, Sink, "a local test sink")]
'''


def write_hook(path: Path, label: str, out: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HOOK.format(label=label, out=str(out)))
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def run(plugins: list[str], sinks: list[dict[str, Any]]) -> Bridge:
    data = {
        "bridge": {"outbox": "memory", "control_socket": "off"},
        "sources": [{"type": "replay", "path": str(TRACE), "progress": False}],
        "sinks": sinks,
    }
    config = load(None, data=data, extra_plugins=plugins)
    bridge = Bridge(config)
    assert asyncio.run(bridge.run(handle_signals=False)) == 0
    return bridge


def test_two_plugin_files_with_one_name_are_both_active(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    first = write_hook(tmp_path / "a" / "hook.py", "a", out)
    second = write_hook(tmp_path / "b" / "hook.py", "b", out)
    bridge = run(
        [str(first), str(second)],
        [{"type": "sink-a", "name": "a"}, {"type": "sink-b", "name": "b"}],
    )
    total = bridge.outbox.last_seq
    assert total > 3
    for label in ("a", "b"):
        assert lines(out / f"{label}.loads") == ["loaded"]
        assert len(lines(out / f"{label}.on_event")) == total, label
        assert lines(out / f"{label}.sink") == [str(seq) for seq in range(1, total + 1)], label
    local = {name: info for name, info in bridge.config.plugins.info.items() if "hook" in name}
    assert len(local) == 2
    assert len({info.module for info in local.values()}) == 2
    assert "virtbridge_local_hook" in local  # the first keeps the short, familiar name
    origins = sorted(info.origin for info in local.values())
    assert origins == sorted([f"loaded from {first}", f"loaded from {second}"])


def test_one_plugin_file_named_twice_is_registered_and_loaded_once(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    hook = write_hook(tmp_path / "a" / "hook.py", "a", out)
    (tmp_path / "b").mkdir()
    alias = tmp_path / "b" / "alias.py"
    alias.symlink_to(hook)
    spellings = [str(hook), str(tmp_path / "b" / ".." / "a" / "hook.py"), str(alias)]
    bridge = run(spellings, [{"type": "sink-a", "name": "a"}])
    total = bridge.outbox.last_seq
    manager = bridge.config.plugins.manager
    registered = [
        plugin
        for plugin in manager.get_plugins()
        if Path(getattr(plugin, "__file__", None) or "/nonexistent").resolve() == hook
    ]
    assert len(registered) == 1
    assert lines(out / "a.loads") == ["loaded"]
    assert len(lines(out / "a.on_event")) == total
    assert lines(out / "a.sink") == [str(seq) for seq in range(1, total + 1)]
