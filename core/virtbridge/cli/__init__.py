"""The ``virtbridge`` command: a client of the public API and the runtime.

Modules: ``main`` (the argument parser and ``run``/``replay``/``check``/``plugins``),
``control`` (commands that talk to a running bridge or its files: ``ctl``, ``status``,
``dead-letters``, ``record``), ``record`` (a live input written as a trace file), ``tail``
(reading a bus back and printing it).

May import: anything of the core (``virtbridge.errors``, ``engine``, ``wire``, ``outbox``,
``plugin``, ``config``, ``runtime``) and the public ``virtbridge`` package; never a plugin
directly (plugins are reached through their hooks).
"""
