"""SIGHUP: what a new configuration changes, as a plan the bridge carries out.

Unchanged sources and sinks keep running; a changed sink is drained (bounded) and restarted
from its cursor; a removed one is drained and forgotten; a changed source is stopped and
started again.  The plan is computed from the two configurations and what runs now, so it
needs nothing of the bridge (:meth:`virtbridge.runtime.bridge.Bridge.reload` applies it).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from virtbridge.config.load import Component, Config


@dataclass
class ReloadPlan:
    """What to do, in this order: stop sources, start sources, stop sinks, create sinks."""

    stop_sources: list[str] = field(default_factory=list)
    start_sources: list[Component] = field(default_factory=list)
    stop_sinks: list[str] = field(default_factory=list)
    forget_sinks: set[str] = field(default_factory=set)
    """Stopped sinks that are gone from the new configuration: their cursors go too."""
    create_sinks: list[Component] = field(default_factory=list)


def plan_reload(
    old: Config, new: Config, sources: Collection[str], sinks: Collection[str]
) -> ReloadPlan:
    """The plan from ``old`` to ``new``, given the ``sources`` and ``sinks`` running now."""
    plan = ReloadPlan()
    old_sources = {c.name: c for c in old.sources}
    new_sources = {c.name: c for c in new.sources}
    for name, component in old_sources.items():
        if name in sources and (
            name not in new_sources or new_sources[name].table != component.table
        ):
            plan.stop_sources.append(name)
    running = set(sources) - set(plan.stop_sources)
    plan.start_sources = [c for name, c in new_sources.items() if name not in running]
    old_sinks = {c.name: c for c in old.sinks}
    new_sinks = {c.name: c for c in new.sinks}
    for name, component in old_sinks.items():
        if name in sinks and (name not in new_sinks or new_sinks[name].table != component.table):
            plan.stop_sinks.append(name)
            if name not in new_sinks:
                plan.forget_sinks.add(name)
    kept = set(sinks) - set(plan.stop_sinks)
    plan.create_sinks = [c for name, c in new_sinks.items() if name not in kept]
    return plan
