"""The ``nats`` sink: domain events to NATS, core or JetStream (nats-py).

```toml
[[sinks]]
type = "nats"
servers = ["nats://127.0.0.1:4222"]   # a string or a list: give every node of a cluster
subject_prefix = "virtbridge"
stream = "VIRTBRIDGE"                 # set: JetStream publish with acks; absent: core NATS
create_stream = false                 # true: create/extend it (subjects, replicas, dedup window)
replicas = 1
duplicate_window = "2m"
state_bucket = "virtbridge_state"     # JetStream key-value bucket with every domain's state
user = "..."                          # also password, token, nkey_seed, credentials (JWT file)
tls_ca = "..."                        # also tls_cert, tls_key
```

Subjects: ``<prefix>.<host>.domain.<name>.<kind>``; each event carries ``Nats-Msg-Id`` = its
CloudEvents id.  ``virtbridge tail nats://HOST:PORT [--stream S]`` reads them back.
"""

from __future__ import annotations

import virtbridge

from ._config import NatsConfig
from ._names import key_token, name_of_key, state_key, subject_token
from ._sink import NatsSink
from ._tail import open_feed

__all__ = ["NatsConfig", "NatsSink", "key_token", "name_of_key", "state_key", "subject_token"]


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[NatsConfig]]:
    return [
        virtbridge.SinkType(
            name="nats",
            config=NatsConfig,
            create=NatsSink,
            description="events to NATS (core or JetStream) and states to a key-value bucket",
            requires=("nats",),
            extra="nats",
        )
    ]


@virtbridge.hookimpl
def virtbridge_tail_types() -> list[virtbridge.TailType]:
    return [
        virtbridge.TailType(
            schemes=("nats", "tls"),
            open=open_feed,
            description="states from the bucket, then events (a stream's history with --stream)",
            requires=("nats",),
            extra="nats",
        )
    ]
