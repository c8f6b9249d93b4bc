"""Configuration: TOML in, a validated :class:`~virtbridge.config.load.Config` out, or a
:class:`~virtbridge.errors.ConfigError` that names the file, the key and what is wrong.

Modules: ``load`` (the file, the ``[bridge]``/``[domains]`` settings, plugins and the
``[[sources]]``/``[[sinks]]`` components), ``values`` (turning one TOML value into what a
struct expects; ``${ENV}`` interpolation).

May import: ``virtbridge.errors``, ``virtbridge.engine`` (policies), ``virtbridge.plugin``
(types and the plugin set to validate against).
"""
