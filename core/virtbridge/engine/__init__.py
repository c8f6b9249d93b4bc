"""The engine: libvirt's qemu-driver lifecycle semantics, signals in, events and actions out.

Owns the model (states, reasons, event types, details, payloads, policies), the signals, the
per-domain state, the rules that change it and the transaction they work in.  Pure: no I/O,
no clock, no logging; it never raises on hypervisor input.

Modules:

* ``states``: ``DomainState`` and one reason enum per state (libvirt's numbers);
* ``lifecycle``: ``EventType`` and one detail enum per type; the states after each event;
* ``reasons``: the one table pairing details and reasons, read both ways (§2.2);
* ``payloads``: the domain event IDs and the payload each carries;
* ``policy``: per-domain on_poweroff / on_reboot / on_crash / shutdown timeout;
* ``time``: timestamps as QEMU sends them;
* ``signals``: the engine's input vocabulary (QMP events, EOF, intents, timers, ...);
* ``events``: the normalized event the engine emits, and its domain reference;
* ``actions``: what the engine asks a process owner to do (kill, monitor commands, ...);
* ``domain``: the per-domain record and ``Tx``, the transaction a rule works in (and where
  strict mode drops extension events);
* ``qmp``: the QMP rules, one function per QMP event, each with its reference row;
* ``qmp_data``: safe readers for a QMP event's ``data``, and a rule's signature;
* ``devices``: the QMP events that only report on devices, displays, jobs and memory;
* ``control``: the control-plane intents (libvirt's public APIs);
* ``requests``: extension: the shutdown request, its timeout and its escalation;
* ``destroy``: virDomainDestroy's first step, shared by the destroy intent and requests;
* ``reconnect``: resynchronising from ``query-status``; a process lost meanwhile;
* ``libvirt``: events libvirt already computed, passed through;
* ``engine``: ``Engine``: dispatch, the records, policies, snapshot and restore.

May import: ``virtbridge.errors``, the standard library and msgspec; nothing above it.
"""
