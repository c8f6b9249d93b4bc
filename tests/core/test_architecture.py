"""The layout holds: layers import downwards only, no module imports itself back, the core
never imports a plugin, and each package says what it owns and what it may import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core" / "virtbridge"

LAYERS = ["errors", "engine", "wire", "outbox", "plugin", "config", "runtime", "api", "cli"]
"""Bottom to top: a module may import its own layer and the layers below it.  ``api`` is
``virtbridge`` itself, the public API plugins import; the command line is its client."""

PLACES = {"hookspecs": "plugin", "__main__": "cli"}
"""Modules at the package's top level: the hook specifications belong to the plugin layer,
``python -m virtbridge`` to the command line."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "api"
    return PLACES.get(parts[1], parts[1])


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, wherever the import statement is (functions and
    ``TYPE_CHECKING`` blocks included: a cycle there is still a cycle in the design)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from virtbridge.engine import actions`` imports the module, not the package
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            if submodules <= set(MODULES):
                found.update(submodules)
            else:
                found.add(node.module)
    return found


MODULES = {module_name(path): path for path in CORE.rglob("*.py")}
GRAPH = {
    name: {target for target in imports(path) if target in MODULES and target != name}
    for name, path in MODULES.items()
}


def test_the_layers_are_the_packages() -> None:
    packages = {path.parent.name for path in CORE.rglob("__init__.py")} - {"virtbridge"}
    assert packages == set(LAYERS) - {"errors", "api"}
    for name in MODULES:
        assert layer_of(name) in LAYERS, f"{name} is in no layer"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_downwards(name: str) -> None:
    here = LAYERS.index(layer_of(name))
    upward = [target for target in GRAPH[name] if LAYERS.index(layer_of(target)) > here]
    assert not upward, f"{name} ({layer_of(name)}) imports {upward} from layers above it"


def test_no_import_cycles() -> None:
    # Packages import their modules' names in __init__ only at the top: leave them out, as
    # importing ``virtbridge.engine.events`` does not import its siblings.
    graph = {
        name: {t for t in targets if MODULES[t].name != "__init__.py"}
        for name, targets in GRAPH.items()
        if MODULES[name].name != "__init__.py"
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def test_the_core_never_imports_a_plugin() -> None:
    for name, path in MODULES.items():
        plugins = sorted(t for t in imports(path) if t.startswith("virtbridge_"))
        assert not plugins, f"{name} imports plugins {plugins}"


def test_the_engine_does_no_io() -> None:
    forbidden = {"asyncio", "socket", "sqlite3", "os", "subprocess", "threading", "logging"}
    for name, path in MODULES.items():
        if layer_of(name) == "engine":
            used = {t.split(".")[0] for t in imports(path)} & forbidden
            assert not used, f"{name} imports {sorted(used)}"


@pytest.mark.parametrize("layer", [layer for layer in LAYERS if layer not in ("errors", "api")])
def test_each_package_says_what_it_owns_and_may_import(layer: str) -> None:
    doc = ast.get_docstring(ast.parse((CORE / layer / "__init__.py").read_text())) or ""
    assert "May import" in doc, f"virtbridge.{layer}: say what it may import"
    below = LAYERS[: LAYERS.index(layer)]
    for lower in below:
        if any(layer_of(t) == lower for n in MODULES if layer_of(n) == layer for t in GRAPH[n]):
            assert lower in doc.lower(), f"virtbridge.{layer} imports {lower} but does not say so"
    for module in sorted(n for n in MODULES if layer_of(n) == layer and n.count(".") == 2):
        assert module.rsplit(".", 1)[1] in doc, f"virtbridge.{layer}: list {module}"
