"""The plugin contract, and the machinery that finds and calls plugins.

Modules: ``api`` (what plugins implement and receive: :class:`Source`, :class:`Sink`, their
configurations, contexts and types, the tail and record types, :class:`BridgeInfo`),
``loading`` (entry points, ``plugins = [...]``, blocking; calling hooks so that one raising
plugin harms nobody else), ``bus`` (what message-bus sinks share: batch acknowledgements,
retained domain states), ``tls`` (one way to build a TLS context from a sink's settings).
The hook specifications themselves are ``virtbridge.hookspecs``, which belongs here.

Models to copy: the log sink (``plugins/virtbridge_log``, one short module) is the plugin to
start from; ``hookspecs.py`` documents every hook, and a test keeps it so (each spec says
when it is called and what each argument is); the QMP plugin's client (``_framing.py``: a
sans-I/O line framer; ``_client.py``: the peer's misbehaviour counted in ``QmpStats``, never
raised) is how a source should treat what a hypervisor sends.

May import: ``virtbridge.errors``, ``virtbridge.engine``, ``virtbridge.wire`` and
``virtbridge.outbox`` (the records sinks receive), and pluggy.
"""
