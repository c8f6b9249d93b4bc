"""Turning a TOML value into what a struct expects, or an error a user can act on
(``file: key: what was expected``), and ``${VAR}`` interpolation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

import msgspec

from virtbridge.errors import ConfigError
from virtbridge.plugin.api import SinkConfig

_MSGSPEC_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)


def convert(table: Mapping[str, Any], kind: type[Any], path: str | None, key: str) -> Any:
    """Validate a table against a struct type; errors name the key and the expectation."""
    try:
        return msgspec.convert(dict(table), kind, strict=True)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_PATH.match(str(exc))
        assert match is not None
        message, where = match["message"], match["path"] or ""
        named = re.match(r"^([a-z_][a-z0-9_]*): (.+)$", message, re.S)
        if named and not where and named.group(1) in _field_names(kind):
            # A struct's own validation (__post_init__) names the key it is about.
            raise ConfigError(named.group(2), file=path, key=f"{key}.{named.group(1)}") from None
        full = key + where
        raise ConfigError(
            _explain(message, kind, where), file=path, key=_fix_key(full, message)
        ) from None


def _field_names(kind: type[Any]) -> set[str]:
    try:
        return {f.name for f in msgspec.structs.fields(kind)}
    except TypeError:
        return set()


def _fix_key(key: str, message: str) -> str:
    found = re.match(r"Object (?:contains unknown|missing required) field `([^`]+)`", message)
    return f"{key}.{found.group(1)}" if found else key


def _explain(message: str, kind: type[Any], where: str) -> str:
    if message.startswith("Object contains unknown field"):
        if where:
            return "unknown key"
        names = [f.name for f in msgspec.structs.fields(kind) if f.name != "type"]
        common = _field_names(SinkConfig)  # every sink's delivery keys go last
        names = [n for n in names if n not in common] + [n for n in names if n in common]
        return f"unknown key (known keys: {', '.join(names)})"
    if message.startswith("Object missing required field"):
        return "missing (required)"
    expected = re.match(r"Expected `([^`]+)`, got `([^`]+)`", message)
    if expected:
        return f"expected {_article(expected.group(1))}, got {_article(expected.group(2))}"
    if message.startswith("Invalid enum value"):
        field_type = _field_type(kind, where)
        got = message.split("Invalid enum value ", 1)[1]
        if isinstance(field_type, type) and issubclass(field_type, Enum):
            choices = ", ".join(repr(m.value) for m in field_type)
            return f"expected one of {choices}, got {got}"
        literal = getattr(field_type, "__args__", None)
        if literal:
            return f"expected one of {', '.join(repr(c) for c in literal)}, got {got}"
    return message[:1].lower() + message[1:]


def _field_type(kind: type[Any], where: str) -> Any:
    name = where.lstrip(".").split(".")[0].split("[")[0]
    try:
        for f in msgspec.structs.fields(kind):
            if f.name == name:
                return f.type
    except TypeError:
        pass
    return None


_ARTICLES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "array": "an array",
    "object": "a table",
    "null": "nothing",
    "int | float": "a number",
}


def _article(type_name: str) -> str:
    if type_name.endswith(" | null"):  # an optional value: what matters is the type wanted
        type_name = type_name[: -len(" | null")]
    return _ARTICLES.get(type_name, type_name)


def kind_name(value: Any) -> str:
    for python, name in (
        (bool, "bool"),
        (int, "int"),
        (float, "float"),
        (str, "str"),
        (list, "array"),
        (dict, "object"),
    ):
        if isinstance(value, python):
            return _article(name)
    return type(value).__name__


_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str], path: str | None, key: str) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string, recursively."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match["name"], match["default"]
            if name in env and (env[name] != "" or default is None):
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"environment variable {name} is not set (use ${{{name}:-default}} for a default)",
                file=path,
                key=key or None,
            )

        return _VARIABLE.sub(replace, value)
    if isinstance(value, dict):
        return {
            k: interpolate(v, env, path, f"{key}.{k}" if key else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, env, path, f"{key}[{i}]") for i, v in enumerate(value)]
    return value
