"""The plugin contract: every hook virtbridge calls.

Plugins are modules (or objects) with functions marked ``@virtbridge.hookimpl`` whose names
match the specs below.  They are found through the ``virtbridge`` entry-point group, the
``plugins = [...]`` configuration key and ``--plugin``; ``disable_plugins = [...]`` and
``--disable-plugin`` block one by name.  A minimal plugin is one function::

    import virtbridge

    @virtbridge.hookimpl
    def virtbridge_on_event(event):
        print(event.describe())

Rules that hold for every hook:

* Hooks are synchronous and are called with keyword arguments; an implementation may accept
  any subset of a spec's arguments.
* A hook implementation that raises is logged with its plugin's name (once per distinct
  error) and counted; the other implementations still run and the bridge keeps going.
* Hooks that run per event (filter, enrich, topic, on_event) are on the hot path: keep them
  cheap, and never do network I/O in them.  Long-lived connections belong in a source or
  sink object, which a type hook returns a factory for.
* Implementations run in pluggy's order: last registered first, ``tryfirst``/``trylast``
  respected.
* Hook wrappers (``hookwrapper=True`` or ``wrapper=True``) are not supported: the bridge
  calls each implementation on its own, to isolate one that raises, so there is nothing to
  wrap.  A plugin that declares one is refused when it is loaded, with a message saying so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from virtbridge.engine.events import Event
    from virtbridge.plugin.api import BridgeInfo, RecorderType, SinkType, SourceType, TailType

PROJECT = "virtbridge"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marker for hook implementations: ``@virtbridge.hookimpl``."""


@hookspec
def virtbridge_source_types() -> list[SourceType[Any]]:
    """Offer source types.

    Called once per plugin when the configuration is loaded (and again on reload).  Return a
    list of :class:`virtbridge.SourceType`, each naming a type (``type = "qmp"``), its
    configuration struct and a factory.  A name offered by two plugins is a configuration
    error when it is used.

    Not ``firstresult``: every plugin's list is collected.
    """
    raise NotImplementedError


@hookspec
def virtbridge_sink_types() -> list[SinkType[Any]]:
    """Offer sink types.

    Called once per plugin when the configuration is loaded (and again on reload).  Return a
    list of :class:`virtbridge.SinkType`.  The runtime validates each ``[[sinks]]`` table
    against the type's struct, calls the factory and owns the sink it returns.

    Not ``firstresult``: every plugin's list is collected.
    """
    raise NotImplementedError


@hookspec
def virtbridge_tail_types() -> list[TailType]:
    """Offer feeds for ``virtbridge tail URL``: what reads events back from a bus.

    Called once per plugin when ``virtbridge tail`` starts.  Return a list of
    :class:`virtbridge.TailType`, each naming the URL schemes it reads (``mqtt``, ``nats``,
    ...) and a function that opens the feed.  A scheme offered by two plugins is an error
    when it is used.

    Not ``firstresult``: every plugin's list is collected.
    """
    raise NotImplementedError


@hookspec
def virtbridge_recorder_types() -> list[RecorderType]:
    """Offer live inputs ``virtbridge record`` can capture as trace files.

    Called once per plugin when ``virtbridge record`` starts.  Return a list of
    :class:`virtbridge.RecorderType`; each ``name`` is the option that selects it
    (``qmp``: ``virtbridge record --qmp SOCKET``).  A name offered by two plugins is an
    error when it is used.

    Not ``firstresult``: every plugin's list is collected.
    """
    raise NotImplementedError


@hookspec
def virtbridge_filter_event(event: Event, sink: str) -> bool | None:
    """Decide whether ``sink`` gets ``event``.

    Called once per event per sink, in that sink's worker, before the event is published.
    Return ``False`` to skip the event for this sink (it still counts as delivered, so the
    sink's cursor moves on), ``True`` or ``None`` to keep it.  The event is dropped for the
    sink if any implementation returns ``False``.

    :param event: the :class:`virtbridge.Event`.
    :param sink: the sink's configured name.
    """
    raise NotImplementedError


@hookspec
def virtbridge_enrich_event(event: Event) -> dict[str, Any] | None:
    """Add attributes to an event.

    Called once per event, before it is stored in the outbox, so every sink sees the same
    attributes and they survive a restart.  Return a mapping of CloudEvents extension
    attributes (names of lower-case letters and digits; values str, int or bool) or None.
    Results of all implementations are merged; an invalid name is logged and dropped.

    :param event: the :class:`virtbridge.Event`.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def virtbridge_event_topic(event: Event, sink: str, default: str) -> str | None:
    """Choose the topic (MQTT) or subject (NATS) an event is published to.

    Called once per event by sinks that have topics.  ``firstresult``: the first non-None
    answer wins; return None to leave the choice to others (and finally to ``default``).
    A returned topic is used as is: escape domain names yourself (see the README's escaping
    rule) so a name like ``a/#`` never becomes a wildcard.

    :param event: the :class:`virtbridge.Event`.
    :param sink: the sink's configured name.
    :param default: the topic the sink would use.
    """
    raise NotImplementedError


@hookspec
def virtbridge_on_event(event: Event) -> None:
    """Receive every event (the one-function plugin).

    Called once per event, in order, from a worker of its own with its own cursor, so a slow
    implementation never holds back the sinks.  Return value ignored.

    :param event: the :class:`virtbridge.Event`.
    """
    raise NotImplementedError


@hookspec
def virtbridge_bridge_started(bridge: BridgeInfo) -> None:
    """The bridge has started: sources and sinks are running.

    Called once per start, after every configured sink and source has been started; not
    called again on a configuration reload.  Return value ignored.

    :param bridge: the running bridge, a :class:`virtbridge.BridgeInfo`: ``host``,
        ``state_dir``, ``config_path`` and ``status()`` (the figures ``virtbridge status``
        shows).
    """
    raise NotImplementedError


@hookspec
def virtbridge_bridge_stopping(bridge: BridgeInfo) -> None:
    """The bridge is about to stop: sources will be stopped and sinks drained.

    Called once per stop (SIGINT, SIGTERM, or every replay finished), before anything is
    stopped, so the bridge's figures are still complete.  Return value ignored.

    :param bridge: the running bridge, a :class:`virtbridge.BridgeInfo`.
    """
    raise NotImplementedError
