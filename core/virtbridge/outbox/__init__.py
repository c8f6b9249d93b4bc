"""The outbox: the append-only log between the engine and the sinks, each sink reading it
from its own cursor, and what makes it durable.

Modules: ``interface`` (the :class:`Outbox` the runtime uses), ``records`` (a stored event:
sequence number, stable id, attributes), ``memory`` (in memory), ``sqlite`` (durable, in
SQLite under the state directory, with its writer thread), ``database`` (the schema and the
statements of one batch), ``codec`` (one record as one msgpack row).

May import: ``virtbridge.errors``, the engine's model (``virtbridge.engine``) and the wire
formats (``virtbridge.wire``: a libvirt event's cause is stored in trace form).
"""
