"""The wire formats: how events and signals look outside the process.

Owns the CloudEvents form every sink publishes (``cloudevents``: envelope, ``data`` with
names and libvirt's codes, decoding back to typed events), the trace-file format of recorded
hypervisor input (``trace``), the payload walker both share (``payloads``: enum fields by
name and by code, at every depth), and the one escaping rule for names in topics and
subjects (``names``).

May import: ``virtbridge.errors`` and the engine's model (``virtbridge.engine``), nothing
above; no I/O.
"""
