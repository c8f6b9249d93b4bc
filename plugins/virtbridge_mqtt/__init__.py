"""The ``mqtt`` sink: domain events to an MQTT broker (paho-mqtt 2, MQTT 3.1.1 and 5).

```toml
[[sinks]]
type = "mqtt"
url = "mqtt://127.0.0.1:1883"     # mqtts:// (TLS), ws://HOST:PORT/PATH, wss://
qos = 1                           # 0 | 1 | 2
topic_prefix = "virtbridge"
protocol = "5"                    # or "3.1.1"
client_id = "virtbridge-hv01"     # default: virtbridge-<host>
username = "bridge"
password = "${MQTT_PASSWORD}"
tls_ca = "/etc/virtbridge/ca.pem" # also tls_cert, tls_key, tls_insecure = false
retain_state = true
homeassistant = false             # Home Assistant MQTT discovery
```

Topics: events on ``<prefix>/<host>/domain/<name>/<kind>``, each domain's current state
retained on ``.../domain/<name>/state``, the bridge's ``online``/``offline`` (last will)
retained on ``<prefix>/<host>/status``.  ``virtbridge tail mqtt://HOST:PORT[/PREFIX]`` reads
them back.
"""

from __future__ import annotations

import virtbridge

from ._config import MqttConfig
from ._sink import MqttSink
from ._tail import open_feed
from ._topics import Layout

__all__ = ["Layout", "MqttConfig", "MqttSink"]


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[MqttConfig]]:
    return [
        virtbridge.SinkType(
            name="mqtt",
            config=MqttConfig,
            create=MqttSink,
            description="events, retained states and status to an MQTT broker",
            requires=("paho",),
            extra="mqtt",
        )
    ]


@virtbridge.hookimpl
def virtbridge_tail_types() -> list[virtbridge.TailType]:
    return [
        virtbridge.TailType(
            schemes=("mqtt", "mqtts", "ws", "wss"),
            open=open_feed,
            description="retained states, then live events, from an MQTT broker",
            requires=("paho",),
            extra="mqtt",
        )
    ]
