"""SIGHUP: re-read the configuration and apply what changed, losing no event.

Unchanged sources and sinks keep running; a changed sink is drained (bounded) and restarted
from its cursor; a removed one is drained and forgotten; a broken file changes nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from virtbridge.config import load as _config
from virtbridge.errors import ConfigError

if TYPE_CHECKING:
    from virtbridge.runtime.bridge import Bridge

log = logging.getLogger("virtbridge")


async def reload_bridge(bridge: Bridge) -> None:
    path = bridge.config.path
    if path is None:
        log.warning("SIGHUP ignored: the bridge runs without a configuration file")
        return
    try:
        new = _config.load(
            path,
            extra_plugins=bridge.config.extra_plugins,
            disabled_plugins=bridge.config.disabled_plugins,
        )
    except ConfigError as exc:
        log.error("reload failed, keeping the running configuration: %s", exc)
        return
    old = bridge.config
    bridge.config = new
    bridge.hooks = new.hooks
    bridge.enrich = bridge.hooks.has("virtbridge_enrich_event")
    bridge.engine.strict_libvirt = new.bridge.strict_libvirt
    bridge.engine.default_policy = new.bridge.policy()
    for name, policy in new.domains.items():
        bridge.engine.set_policy(name, policy)
    old_sources = {c.name: c for c in old.sources}
    new_sources = {c.name: c for c in new.sources}
    for name, component in old_sources.items():
        if name in bridge.sources and (
            name not in new_sources or new_sources[name].table != component.table
        ):
            await bridge.stop_source(bridge.sources[name])
    for name, component in new_sources.items():
        if name not in bridge.sources:
            try:
                bridge.start_source(component)
            except ConfigError as exc:
                log.error("reload: %s", exc)
    old_sinks = {c.name: c for c in old.sinks}
    new_sinks = {c.name: c for c in new.sinks}
    for name, component in old_sinks.items():
        if name in bridge.workers and (
            name not in new_sinks or new_sinks[name].table != component.table
        ):
            await bridge.stop_sink(name, bridge.config.bridge.drain_timeout)
            if name not in new_sinks:
                bridge.outbox.unregister_sink(name)
    for name, component in new_sinks.items():
        if name not in bridge.workers:
            try:
                bridge.create_sink(component)
            except ConfigError as exc:
                log.error("reload: %s", exc)
    log.info("configuration reloaded from %s", path)
