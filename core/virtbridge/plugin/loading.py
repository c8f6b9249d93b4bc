"""Finding plugins, and calling their hooks so that one broken plugin harms nobody else.

pluggy stops a hook call at the first implementation that raises.  virtbridge calls each
implementation itself (:class:`Hooks`), so a plugin that raises is logged with its name (once
per distinct error), counted, and skipped, and every other plugin still runs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import logging
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

import pluggy

from virtbridge import hookspecs
from virtbridge.errors import ConfigError, PluginLoadError
from virtbridge.plugin.api import RecorderType, SinkType, SourceType, TailType


class Offer(Protocol):
    """What a plugin offers (a source, sink, tail or recorder type): the Python modules it
    needs, and the extra that installs them."""

    @property
    def requires(self) -> tuple[str, ...]: ...

    @property
    def extra(self) -> str: ...


OfferT = TypeVar("OfferT", bound=Offer)


def the_offer(offers: Sequence[tuple[str, OfferT]], what: str) -> OfferT:
    """The one plugin's offer of ``what`` (named as in a message: "sink type 'mqtt'"), with
    the Python modules it needs present; a :class:`ConfigError` (callers add where it was
    asked for) when several plugins offer it or a module is missing."""
    if len(offers) > 1:
        who = ", ".join(plugin for plugin, _ in offers)
        raise ConfigError(f"{what} is offered by several plugins ({who}); disable all but one")
    offer = offers[0][1]
    for module in offer.requires:
        if importlib.util.find_spec(module) is None:
            hint = (
                f"pip install 'virtbridge[{offer.extra}]'"
                if offer.extra
                else f"install the Python module {module!r}"
            )
            raise ConfigError(f"{what} needs the Python module {module!r}: {hint}")
    return offer


ENTRY_POINT_GROUP = "virtbridge"
LOCAL_PREFIX = "virtbridge_local_"
"""What the names of plugins loaded from ``.py`` files start with."""
log = logging.getLogger("virtbridge.plugins")


@dataclass
class PluginInfo:
    """Where a registered plugin came from (for ``virtbridge plugins``)."""

    name: str
    origin: str
    module: str


@dataclass
class PluginSet:
    """A plugin manager plus what is known about each plugin."""

    manager: pluggy.PluginManager
    info: dict[str, PluginInfo] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    """Entry-point plugins that failed to import: name → error (they are skipped)."""


def load_plugins(
    modules: Sequence[str] = (),
    *,
    blocked: Iterable[str] = (),
    entry_points: bool = True,
) -> PluginSet:
    """Create a plugin manager with the entry-point plugins, then ``modules``.

    ``modules`` are dotted module names or paths to ``.py`` files; one that cannot be loaded
    raises :class:`PluginLoadError`.  An entry-point plugin that fails to import is recorded
    in ``broken`` and logged, and the bridge carries on without it.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    plugins = PluginSet(manager)
    for name in blocked:
        manager.set_blocked(name)
    if entry_points:
        for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if manager.is_blocked(point.name) or manager.has_plugin(point.name):
                continue
            try:
                module = point.load()
            except Exception as exc:  # a broken third-party plugin must not stop the bridge
                plugins.broken[point.name] = f"{type(exc).__name__}: {exc}"
                log.error(
                    "plugin %r (entry point %s) failed to load: %s", point.name, point.value, exc
                )
                continue
            dist = point.dist.name if point.dist is not None else "?"
            version = point.dist.version if point.dist is not None else "?"
            try:
                _register(
                    plugins, module, point.name, f"entry point {point.value} ({dist} {version})"
                )
            except PluginLoadError as exc:
                plugins.broken[point.name] = exc.reason
                log.error(
                    "plugin %r (entry point %s) rejected: %s", point.name, point.value, exc.reason
                )
    files: set[str] = set()
    for spec in modules:
        path = _plugin_file(spec)
        if path is None:
            module = import_plugin(spec)
            name = module.__name__
            if (
                manager.has_plugin(name)
                or manager.is_blocked(name)
                or manager.is_registered(module)
            ):
                continue  # already loaded, perhaps through its entry point under another name
        else:
            module_name = local_module_name(path)
            if module_name in files:
                continue  # the same file named twice (perhaps spelt differently): loaded once
            files.add(module_name)
            # Plugins are known by the file's stem (``virtbridge_local_hook``) as long as that
            # is unambiguous; a second file with the same stem is known by its module name.
            name = f"{LOCAL_PREFIX}{path.stem}"
            if manager.is_blocked(name) or manager.is_blocked(module_name):
                continue
            module = import_plugin(spec)
            if manager.has_plugin(name):
                name = module_name
        try:
            _register(plugins, module, name, f"loaded from {spec}")
        except PluginLoadError as exc:
            raise PluginLoadError(spec, exc.reason) from None
    return plugins


def _register(plugins: PluginSet, module: ModuleType, name: str, origin: str) -> None:
    try:
        plugins.manager.register(module, name=name)
        plugins.manager.check_pending()
    except pluggy.PluginValidationError as exc:
        plugins.manager.unregister(name=name)
        reason = str(exc).split(" in plugin <", 1)[0]  # pluggy appends the module's repr
        raise PluginLoadError(name, reason) from None
    wrappers = sorted(
        caller.name
        for caller in plugins.manager.get_hookcallers(module) or ()
        for impl in caller.get_hookimpls()
        if impl.plugin is module and (impl.hookwrapper or impl.wrapper)
    )
    if wrappers:
        plugins.manager.unregister(name=name)
        raise PluginLoadError(
            name, f"hook wrappers are not supported ({', '.join(wrappers)}): use plain hooks"
        )
    plugins.info[name] = PluginInfo(name, origin, module.__name__)


def _plugin_file(spec: str) -> Path | None:
    """The path of a plugin given as a ``.py`` file, or None for a dotted module name."""
    if spec.endswith(".py") or "/" in spec:
        return Path(spec).expanduser()
    return None


def local_module_name(path: Path) -> str:
    """The module name a plugin file is loaded under.

    Derived from the whole resolved path: the stem alone would give ``/a/hook.py`` and
    ``/b/hook.py`` one name, and the second file would replace the first in ``sys.modules``
    and never be registered; one file reached through different spellings (relative, through
    a symbolic link) keeps one name.
    """
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() or c == "_" else "_" for c in resolved.stem)
    return f"{LOCAL_PREFIX}{stem}_{digest}"


def import_plugin(spec: str) -> ModuleType:
    """Import a plugin given as a dotted module name or a path to a ``.py`` file."""
    path = _plugin_file(spec)
    if path is not None:
        if not path.is_file():
            raise PluginLoadError(spec, "no such file")
        name = local_module_name(path)
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise PluginLoadError(spec, "not a Python file")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise PluginLoadError(spec, f"{type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise PluginLoadError(spec, "no such module") from None
        raise PluginLoadError(spec, f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise PluginLoadError(spec, f"{type(exc).__name__}: {exc}") from exc


class PluginErrors:
    """Counts hook failures per (plugin, hook) and logs each distinct error once."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._seen: set[tuple[str, str, str, str]] = set()
        self._log = logger

    def record(self, plugin: str, hook: str, exc: BaseException) -> None:
        self.counts[(plugin, hook)] += 1
        key = (plugin, hook, type(exc).__name__, str(exc))
        if key in self._seen:
            return
        self._seen.add(key)
        self._log.error(
            "plugin %r raised in %s: %s: %s (counted; further identical errors are not logged)",
            plugin,
            hook,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return {f"{plugin}:{hook}": count for (plugin, hook), count in sorted(self.counts.items())}


class Hooks:
    """Calls hook implementations one by one, isolating failures."""

    def __init__(self, manager: pluggy.PluginManager, errors: PluginErrors | None = None) -> None:
        self.manager = manager
        self.errors = errors or PluginErrors()
        self._impls: dict[str, list[pluggy.HookImpl]] = {}

    def impls(self, hook: str) -> list[pluggy.HookImpl]:
        """Normal (non-wrapper) implementations in call order, cached."""
        found = self._impls.get(hook)
        if found is None:
            caller = getattr(self.manager.hook, hook)
            found = [
                impl
                for impl in reversed(caller.get_hookimpls())
                if not (impl.hookwrapper or impl.wrapper)
            ]
            self._impls[hook] = found
        return found

    def has(self, hook: str) -> bool:
        return bool(self.impls(hook))

    def _results(self, hook: str, kwargs: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """(plugin name, result) of each implementation in call order; failures are recorded
        and skipped."""
        for impl in self.impls(hook):
            try:
                result = impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception as exc:
                self.errors.record(impl.plugin_name, hook, exc)
                continue
            yield impl.plugin_name, result

    def each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation; return (plugin name, result) for non-None results."""
        return [
            (name, result) for name, result in self._results(hook, kwargs) if result is not None
        ]

    def first(self, hook: str, **kwargs: Any) -> Any:
        """The first non-None result (``firstresult`` semantics, failures skipped)."""
        for _name, result in self._results(hook, kwargs):
            if result is not None:
                return result
        return None

    def types(
        self,
    ) -> tuple[
        dict[str, list[tuple[str, SourceType[Any]]]], dict[str, list[tuple[str, SinkType[Any]]]]
    ]:
        """Every offered source and sink type: name → [(plugin, type), ...]."""
        sources: dict[str, list[tuple[str, SourceType[Any]]]] = {}
        sinks: dict[str, list[tuple[str, SinkType[Any]]]] = {}
        for plugin, offered in self.each("virtbridge_source_types"):
            for item in offered:
                if isinstance(item, SourceType):
                    sources.setdefault(item.name, []).append((plugin, item))
        for plugin, offered in self.each("virtbridge_sink_types"):
            for item in offered:
                if isinstance(item, SinkType):
                    sinks.setdefault(item.name, []).append((plugin, item))
        return sources, sinks

    def recorder_types(self) -> dict[str, list[tuple[str, RecorderType]]]:
        """Every offered ``virtbridge record`` input: name → [(plugin, type), ...]."""
        inputs: dict[str, list[tuple[str, RecorderType]]] = {}
        for plugin, offered in self.each("virtbridge_recorder_types"):
            for item in offered:
                if isinstance(item, RecorderType):
                    inputs.setdefault(item.name, []).append((plugin, item))
        return inputs

    def tail_types(self) -> dict[str, list[tuple[str, TailType]]]:
        """Every offered ``virtbridge tail`` feed: URL scheme → [(plugin, type), ...]."""
        feeds: dict[str, list[tuple[str, TailType]]] = {}
        for plugin, offered in self.each("virtbridge_tail_types"):
            for item in offered:
                if isinstance(item, TailType):
                    for scheme in item.schemes:
                        feeds.setdefault(scheme, []).append((plugin, item))
        return feeds
