"""Configuration: TOML in, a validated :class:`Config` out, or a :class:`ConfigError` that names
the file, the key and what was expected.

Layout (Telegraf-style)::

    [bridge]                     # host, state_dir, strict_libvirt, policy defaults, plugins
    [domains."vm1"]              # per-domain policy overrides
    [[sources]]                  # type = "replay" | "qmp" | "qemu" | ...
    [[sinks]]                    # type = "log" | "jsonl" | "domain-events" | ...

Every string may use ``${VAR}`` or ``${VAR:-default}`` (``$$`` is a literal ``$``).
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from virtbridge.config.values import convert, interpolate, kind_name
from virtbridge.engine.policy import LifecycleAction, Policy, ShutdownTimeoutAction
from virtbridge.engine.signals import PolicyOverrides
from virtbridge.errors import ConfigError, PluginLoadError
from virtbridge.plugin.api import (
    PluginConfig,
    Sink,
    SinkContext,
    SinkType,
    Source,
    SourceContext,
    SourceType,
)
from virtbridge.plugin.loading import Hooks, PluginSet, load_plugins, the_offer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]


class BridgeSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[bridge]`` table."""

    host: str = ""
    """Host name in CloudEvents ``source``, topics and subjects (default: this machine's)."""
    state_dir: str = ""
    """Where the outbox and the bridge's identity live (default: /var/lib/virtbridge for root,
    ``$XDG_STATE_HOME/virtbridge`` otherwise)."""
    strict_libvirt: bool = False
    on_poweroff: LifecycleAction = LifecycleAction.DESTROY
    on_reboot: LifecycleAction = LifecycleAction.RESTART
    on_crash: LifecycleAction = LifecycleAction.DESTROY
    shutdown_timeout: float = 60.0
    on_shutdown_timeout: ShutdownTimeoutAction = ShutdownTimeoutAction.NONE
    monitor_events: Literal["unhandled", "all"] = "unhandled"
    plugins: list[str] = []
    disable_plugins: list[str] = []
    drain_timeout: float = 10.0
    """Seconds a stopping bridge waits for sinks to deliver what is in flight."""
    outbox: Literal["sqlite", "memory"] = "sqlite"
    """sqlite: durable (state_dir/outbox.sqlite3); memory: nothing survives a restart."""
    outbox_window: int = 10_000
    """At most this many events are also kept in memory, for as long as a sink still needs
    them, so sinks that keep up never read the disk (and a bridge whose sinks keep up holds
    almost nothing); a sink further behind reads from the disk."""
    outbox_max_events: int = 10_000_000
    """Above this many stored events the bridge warns (and counts); sinks with
    overflow = "drop-oldest" drop instead of holding events back."""
    outbox_sync: Literal["normal", "full"] = "normal"
    """SQLite synchronous mode: normal survives a killed bridge; full also a power cut."""
    metrics: str = ""
    """host:port for Prometheus metrics, /healthz and /readyz over HTTP (empty: off)."""
    control_socket: str = ""
    """Path of the control socket (``virtbridge ctl``/``status``); default: state_dir/control.sock;
    "off": none."""

    def __post_init__(self) -> None:
        if self.metrics:
            host, _, port = self.metrics.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError("metrics: must be host:port, for example 127.0.0.1:9108")
        if self.outbox_window < 1:
            raise ValueError("outbox_window: must be at least 1")

    def policy(self) -> Policy:
        return Policy(
            on_poweroff=self.on_poweroff,
            on_reboot=self.on_reboot,
            on_crash=self.on_crash,
            shutdown_timeout=self.shutdown_timeout,
            on_shutdown_timeout=self.on_shutdown_timeout,
        )


@dataclass
class Component:
    """One configured source or sink, validated against its type."""

    kind: Literal["source", "sink"]
    index: int
    name: str
    type_name: str
    plugin: str
    config: PluginConfig
    factory: SourceType[Any] | SinkType[Any]
    table: dict[str, Any]
    """The table as written (after interpolation): compared on reload to see what changed."""
    path: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}s[{self.index}]"

    def create_source(self, ctx: SourceContext) -> Source:
        assert isinstance(self.factory, SourceType)
        try:
            return self.factory.create(self.config, ctx)
        except Exception as exc:
            raise self._cannot_create(exc) from exc

    def create_sink(self, ctx: SinkContext) -> Sink:
        assert isinstance(self.factory, SinkType)
        try:
            return self.factory.create(self.config, ctx)
        except Exception as exc:
            raise self._cannot_create(exc) from exc

    def _cannot_create(self, exc: Exception) -> ConfigError:
        message = f"cannot create {self.kind} {self.name!r}: {type(exc).__name__}: {exc}"
        return ConfigError(message, file=self.path, key=self.key)


@dataclass
class Config:
    """A validated configuration."""

    path: str | None
    bridge: BridgeSettings
    sources: list[Component]
    sinks: list[Component]
    domains: dict[str, Policy]
    plugins: PluginSet
    hooks: Hooks
    extra_plugins: Sequence[str] = field(default_factory=tuple)
    disabled_plugins: Sequence[str] = field(default_factory=tuple)


TOP_LEVEL = ("bridge", "domains", "sources", "sinks")


def default_state_dir() -> str:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "/var/lib/virtbridge"
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "virtbridge")


def read_file(path: str) -> dict[str, Any]:
    """Parse a TOML file; every failure is a :class:`ConfigError`."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError("no such file", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None
    try:
        parsed: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
        return parsed
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=path) from None


def load(
    path: str | None,
    *,
    data: Mapping[str, Any] | None = None,
    extra_plugins: Sequence[str] = (),
    disabled_plugins: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    entry_points: bool = True,
) -> Config:
    """Load and validate a configuration from ``path`` (or from ``data`` already parsed)."""
    env = os.environ if environ is None else environ
    source = data if data is not None else read_file(path or "")
    tables = interpolate(dict(source), env, path, "")
    for key in tables:
        if key not in TOP_LEVEL:
            raise ConfigError(
                f"unknown table (expected one of: {', '.join(TOP_LEVEL)})", file=path, key=key
            )
    bridge_table = _table(tables.get("bridge", {}), path, "bridge")
    bridge = convert(bridge_table, BridgeSettings, path, "bridge")
    if not bridge.host:
        bridge.host = socket.gethostname()
    if not bridge.state_dir:
        bridge.state_dir = default_state_dir()
    bridge.state_dir = os.path.expanduser(bridge.state_dir)
    for field_name, problem in bridge.policy().problems_by_key():
        raise ConfigError(problem, file=path, key=f"bridge.{field_name}")
    try:
        plugins = load_plugins(
            [*bridge.plugins, *extra_plugins],
            blocked=[*bridge.disable_plugins, *disabled_plugins],
            entry_points=entry_points,
        )
    except PluginLoadError as exc:
        key = "bridge.plugins" if exc.spec in bridge.plugins else "--plugin"
        if exc.spec in bridge.plugins and len(bridge.plugins) > 1:
            key = f"bridge.plugins[{bridge.plugins.index(exc.spec)}]"
        raise ConfigError(
            f"cannot load plugin {exc.spec!r}: {exc.reason}", file=path, key=key
        ) from None
    hooks = Hooks(plugins.manager)
    source_types, sink_types = hooks.types()
    sources = _components("source", tables.get("sources", []), source_types, path)
    sinks = _components("sink", tables.get("sinks", []), sink_types, path)
    domains = _domains(tables.get("domains", {}), bridge.policy(), path)
    return Config(
        path,
        bridge,
        sources,
        sinks,
        domains,
        plugins,
        hooks,
        tuple(extra_plugins),
        tuple(disabled_plugins),
    )


def _table(value: Any, path: str | None, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"expected a table, got {kind_name(value)}", file=path, key=key)
    return value


def _components(
    kind: Literal["source", "sink"],
    value: Any,
    types: Mapping[str, list[tuple[str, Any]]],
    path: str | None,
) -> list[Component]:
    plural = f"{kind}s"
    if not isinstance(value, list):
        raise ConfigError(
            f"expected an array of tables ([[{plural}]]), got {kind_name(value)}",
            file=path,
            key=plural,
        )
    out: list[Component] = []
    names: dict[str, str] = {}
    for index, item in enumerate(value):
        key = f"{plural}[{index}]"
        table = _table(item, path, key)
        type_name = table.get("type")
        if not isinstance(type_name, str):
            raise ConfigError(
                f'missing "type" (one of: {", ".join(sorted(types)) or "none installed"})',
                file=path,
                key=key,
            )
        offers = types.get(type_name)
        if not offers:
            known = ", ".join(sorted(types)) or "none installed"
            raise ConfigError(
                f"unknown {kind} type {type_name!r} (known: {known})", file=path, key=f"{key}.type"
            )
        try:
            factory = the_offer(offers, f"{kind} type {type_name!r}")
        except ConfigError as exc:
            raise ConfigError(exc.message, file=path, key=f"{key}.type") from None
        plugin = offers[0][0]
        config = convert(table, factory.config, path, key)
        name = config.name or type_name
        if name == "virtbridge_on_event":
            raise ConfigError(f"the {kind} name {name!r} is reserved", file=path, key=f"{key}.name")
        if name in names:
            hint = ' (give each one a distinct "name")' if not config.name else ""
            raise ConfigError(
                f"duplicate {kind} name {name!r}, also used by {names[name]}{hint}",
                file=path,
                key=f"{key}.name",
            )
        names[name] = key
        config.name = name
        out.append(Component(kind, index, name, type_name, plugin, config, factory, table, path))
    return out


def _domains(value: Any, base: Policy, path: str | None) -> dict[str, Policy]:
    table = _table(value, path, "domains")
    out = {}
    for name, overrides in table.items():
        key = f"domains.{_quote(name)}"
        policy = convert(_table(overrides, path, key), PolicyOverrides, path, key).apply(base)
        for field_name, problem in policy.problems_by_key():
            raise ConfigError(problem, file=path, key=f"{key}.{field_name}")
        out[name] = policy
    return out


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'
