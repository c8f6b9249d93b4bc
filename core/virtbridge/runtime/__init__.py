"""The bridge at run time: sources → engine → outbox → one worker per sink.

Modules: ``bridge`` (the :class:`Bridge`: feeds signals to the engine, stores events,
dispatches actions, runs and stops everything, applies a reload), ``workers`` (a sink
worker: reads the outbox from the sink's cursor, filters, publishes, retries), ``contexts``
(what sources and sinks are handed; they reach the bridge through the ``Hub`` protocol),
``control`` (the control service: ``ctl`` verbs and status, through ``Controlled``),
``control_socket`` (the socket and its wire protocol), ``reload`` (a new configuration as a
plan), ``metrics`` (Prometheus, ``/healthz``, ``/readyz``).

May import: everything below it: ``virtbridge.errors``, ``engine``, ``wire``, ``outbox``,
``plugin``, ``config``.  Nothing here imports the bridge module but the bridge itself.
"""
