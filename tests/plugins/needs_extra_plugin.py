"""A test plugin whose sink type needs a module that is not installed."""

from __future__ import annotations

import virtbridge


class NeedyConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    pass


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[NeedyConfig]]:
    return [
        virtbridge.SinkType(
            name="needy",
            config=NeedyConfig,
            create=lambda config, ctx: None,  # type: ignore[arg-type,return-value]
            requires=("virtbridge_test_missing_module",),
            extra="needy",
        )
    ]
