"""Built-in plugins are written like third-party ones: they use only ``virtbridge.__all__``."""

from __future__ import annotations

import ast
from pathlib import Path

import virtbridge

ROOT = Path(__file__).resolve().parents[2]


def test_plugins_use_only_the_public_api() -> None:
    public = set(virtbridge.__all__)
    files = sorted((ROOT / "plugins").rglob("*.py")) + sorted((ROOT / "examples").rglob("*.py"))
    assert len(files) > 10
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("virtbridge")
            ):
                if node.module.startswith(("virtbridge_",)):
                    continue
                assert node.module == "virtbridge", f"{path}: imports {node.module}"
                for alias in node.names:
                    assert alias.name in public, f"{path}: {alias.name} is not public"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name == "virtbridge" or not alias.name.startswith("virtbridge."), (
                        path
                    )
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "virtbridge"
            ):
                assert node.attr in public, f"{path}: virtbridge.{node.attr} is not public"


def test_all_is_sorted_and_complete() -> None:
    names = virtbridge.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(virtbridge, name), name
