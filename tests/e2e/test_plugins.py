"""Plugins: documented hooks, isolation of a plugin that raises, filters and enrichment."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from pathlib import Path

import pytest

from virtbridge import hookspecs
from virtbridge.config.load import load
from virtbridge.runtime.bridge import Bridge

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "plugins"
TRACES = ROOT / "examples" / "traces"


def test_every_hook_is_documented() -> None:
    specs = [
        (name, obj)
        for name, obj in vars(hookspecs).items()
        if name.startswith("virtbridge_") and callable(obj)
    ]
    assert len(specs) >= 8
    for name, function in specs:
        doc = inspect.getdoc(function) or ""
        assert "Called" in doc, f"{name}: say when it is called"
        assert len(doc.split()) >= 25, f"{name}: too short to be useful"
        for parameter in inspect.signature(function).parameters:
            assert parameter in doc, f"{name}: argument {parameter!r} is not documented"
        first = getattr(function, "virtbridge_spec", {}).get("firstresult", False)
        assert ("firstresult" in doc) or not first, f"{name}: say that it is firstresult"
        assert ("Not ``firstresult``" in doc or "firstresult" not in doc) or first


def run_bridge(data: dict[str, object], plugins: list[str]) -> Bridge:
    data = {"bridge": {"outbox": "memory", "control_socket": "off"}, **data}
    config = load(None, data=data, extra_plugins=plugins)
    bridge = Bridge(config)
    assert asyncio.run(bridge.run(handle_signals=False)) == 0
    return bridge


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_raising_plugin_never_stops_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import tests.plugins.counting_plugin as counting

    counting.SEEN.clear()
    caplog.set_level(logging.ERROR)
    data = {
        "sources": [{"type": "replay", "path": str(TRACES / "*.jsonl"), "progress": False}],
        "sinks": [
            {"type": "jsonl", "name": "a", "path": str(tmp_path / "a.jsonl")},
            {"type": "jsonl", "name": "b", "path": str(tmp_path / "b.jsonl")},
            {"type": "jsonl", "name": "crashes", "path": str(tmp_path / "crashes.jsonl")},
        ],
    }
    bridge = run_bridge(data, [str(PLUGINS / "raising_plugin.py"), "tests.plugins.counting_plugin"])
    a, b = read_jsonl(tmp_path / "a.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    total = bridge.outbox.last_seq
    assert total > 100
    assert len(a) == len(b) == total == len(counting.SEEN)
    assert [event["id"] for event in a] == [event["id"] for event in b]
    # the good plugin's enrichment and filter still work
    assert all(event["rack"] == "r12" for event in a)
    crashes = read_jsonl(tmp_path / "crashes.jsonl")
    assert crashes and all(event["data"]["event"] == "CRASHED" for event in crashes)  # type: ignore[index]
    # every failure counted, each distinct one logged once
    errors = bridge.hooks.errors.as_dict()
    plugin = "virtbridge_local_raising_plugin"
    assert errors[f"{plugin}:virtbridge_on_event"] == total
    assert errors[f"{plugin}:virtbridge_enrich_event"] == total
    assert errors[f"{plugin}:virtbridge_filter_event"] == 3 * total
    assert errors["tests.plugins.counting_plugin:virtbridge_enrich_event"] == total  # "Bad-Name"
    logged = [r for r in caplog.records if "raised in" in r.getMessage()]
    assert len(logged) == 4, [r.getMessage() for r in logged]
    assert any("on_event is broken" in r.getMessage() for r in logged)
    status = bridge.status()
    assert status["plugin_errors"] == errors


def test_blocked_plugin_is_not_loaded(tmp_path: Path) -> None:
    config = load(None, data={}, disabled_plugins=["jsonl"])
    assert not config.plugins.manager.has_plugin("jsonl")
    _, sinks = config.hooks.types()
    assert "jsonl" not in sinks and "log" in sinks


def test_naming_an_installed_plugin_by_module_loads_it_once() -> None:
    """``plugins = ["virtbridge_jsonl"]`` names a plugin its entry point already loaded."""
    from virtbridge.plugin.loading import load_plugins

    plugins = load_plugins(["virtbridge_jsonl"])
    module = plugins.manager.get_plugin("jsonl")
    assert module is not None and module.__name__ == "virtbridge_jsonl"
    assert [m for m in plugins.manager.get_plugins() if m is module] == [module]


def test_a_hook_wrapper_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    from virtbridge.errors import PluginLoadError
    from virtbridge.plugin.loading import load_plugins

    plugin = tmp_path / "wrapping.py"
    plugin.write_text(
        "import virtbridge\n\n"
        "@virtbridge.hookimpl(wrapper=True)\n"
        "def virtbridge_on_event(event):\n"
        "    return (yield)\n"
    )
    with pytest.raises(PluginLoadError, match="hook wrappers are not supported"):
        load_plugins([str(plugin)], entry_points=False)


def test_an_offer_is_taken_from_one_plugin_with_its_modules_present() -> None:
    """Configuration, tail and record pick what a plugin offers the same way: one plugin,
    the Python modules it needs present, or a clear error naming the plugins or the extra."""
    from virtbridge.errors import ConfigError
    from virtbridge.plugin.api import TailType
    from virtbridge.plugin.loading import the_offer

    def offer(*requires: str, extra: str = "") -> TailType:
        return TailType(("x",), lambda options: None, requires=requires, extra=extra)  # type: ignore[arg-type,return-value]

    ready = offer("json")
    assert the_offer([("p1", ready)], "reading x://") is ready
    with pytest.raises(ConfigError, match=r"reading x:// is offered by several plugins \(p1, p2\)"):
        the_offer([("p1", ready), ("p2", offer())], "reading x://")
    with pytest.raises(
        ConfigError, match=r"needs the Python module 'no_such_mod_1': pip install 'virtbridge\[x\]'"
    ):
        the_offer([("p1", offer("no_such_mod_1", extra="x"))], "reading x://")
    with pytest.raises(ConfigError, match="install the Python module 'no_such_mod_2'"):
        the_offer([("p1", offer("no_such_mod_2"))], "recording --x")
