"""The ``replay`` source: plays trace files (recorded hypervisor input) into the engine.

```toml
[[sources]]
type = "replay"
path = "examples/traces/*.jsonl"   # a file, a glob, or a list of them; played in order
speed = 0.0                        # 0: as fast as possible; 1.0: recorded speed; 2.0: twice as fast
progress = true                    # a progress bar on stderr when it is a terminal
```

A bridge whose sources are all replays exits when they are done and every sink has flushed.
"""

from __future__ import annotations

import virtbridge
from virtbridge_replay._source import ReplayConfig, ReplaySource

__all__ = ["ReplayConfig", "ReplaySource"]


@virtbridge.hookimpl
def virtbridge_source_types() -> list[virtbridge.SourceType[ReplayConfig]]:
    return [
        virtbridge.SourceType(
            name="replay",
            config=ReplayConfig,
            create=ReplaySource,
            description="play trace files (recorded hypervisor input), fast or at recorded speed",
        )
    ]
