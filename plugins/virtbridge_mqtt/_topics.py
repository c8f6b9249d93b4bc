"""The topic layout and the retained documents (pure: no I/O).

```
<prefix>/<host>/domain/<name>/<kind>   events (kind: lifecycle, reboot, watchdog, ...)
<prefix>/<host>/domain/<name>/state    retained: the domain's current state (JSON)
<prefix>/<host>/status                 retained: online, and offline as the last will
<ha_prefix>/sensor/<node>/<object>/config   Home Assistant discovery (homeassistant = true)
```

Host and domain names go through :func:`virtbridge.escape_token`, so ``a/#`` or ``$SYS``
never become a topic level or a wildcard; :func:`virtbridge.unescape_token` gives them back.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import virtbridge

STATE = "state"
STATUS = "status"
ONLINE = b"online"
OFFLINE = b"offline"

_HA_ID = re.compile(r"[^A-Za-z0-9_-]")

STATE_NAMES = [state.name.lower() for state in virtbridge.DomainState]
"""The values the Home Assistant state sensor takes (its ``options``)."""


def check_prefix(prefix: str, key: str) -> None:
    """A prefix is topic levels of our choosing: no wildcards, no empty level."""
    if not prefix:
        raise ValueError(f"{key}: must not be empty")
    if any(char in prefix for char in "+#\0"):
        raise ValueError(f"{key}: must not contain +, # or NUL (those are MQTT wildcards)")
    if prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        raise ValueError(
            f"{key}: must not have an empty topic level (a leading, trailing or double /)"
        )


@dataclass(frozen=True)
class Layout:
    """The topics of one bridge host under one prefix."""

    prefix: str
    host: str
    ha_prefix: str = "homeassistant"
    _topics: dict[tuple[str, str], str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{virtbridge.escape_token(self.host)}"

    @property
    def status(self) -> str:
        return f"{self.base}/{STATUS}"

    def domain(self, name: str) -> str:
        return f"{self.base}/domain/{virtbridge.escape_token(name)}"

    def event(self, name: str, kind: str) -> str:
        topics = self._topics
        topic = topics.get((name, kind))
        if topic is None:
            if len(topics) > 65_536:  # a bound, not a policy: names come and go
                topics.clear()
            topic = topics[(name, kind)] = f"{self.domain(name)}/{kind}"
        return topic

    def state(self, name: str) -> str:
        return f"{self.domain(name)}/{STATE}"

    # -- Home Assistant ---------------------------------------------------------------------

    @property
    def ha_node(self) -> str:
        return f"virtbridge_{_ha_safe(self.host)}"

    def ha_object(self, name: str) -> str:
        return f"{_ha_safe(name)}_state"

    def ha_config(self, name: str) -> str:
        return f"{self.ha_prefix}/sensor/{self.ha_node}/{self.ha_object(name)}/config"

    @property
    def ha_birth(self) -> str:
        """Home Assistant announces its (re)start here: discovery is sent again."""
        return f"{self.ha_prefix}/status"

    def ha_discovery(self, name: str, uuid: str | None) -> dict[str, Any]:
        """The discovery document that makes a domain a device with a state sensor (the
        reason and the rest of the state document as attributes), available while the
        bridge is online."""
        state_topic = self.state(name)
        unique = f"{self.ha_node}_{self.ha_object(name)}"
        return {
            "name": "State",
            "unique_id": unique,
            "state_topic": state_topic,
            "value_template": "{{ value_json.state | lower }}",
            "json_attributes_topic": state_topic,
            "device_class": "enum",
            "options": STATE_NAMES,
            "icon": "mdi:server",
            "availability_topic": self.status,
            "payload_available": ONLINE.decode(),
            "payload_not_available": OFFLINE.decode(),
            "qos": 1,
            "device": {
                "identifiers": [f"virtbridge_{_ha_safe(self.host)}_{_ha_safe(uuid or name)}"],
                "name": name,
                "manufacturer": "virtbridge",
                "model": "virtual machine",
                "sw_version": virtbridge.__version__,
            },
            "origin": {"name": "virtbridge", "sw_version": virtbridge.__version__},
        }


def _ha_safe(name: str) -> str:
    """Home Assistant ids allow ``[A-Za-z0-9_-]`` only: keep what fits, and add a short hash
    whenever anything was replaced, so two different names never share an id."""
    safe = _HA_ID.sub("_", name)[:48]
    if safe == name:
        return safe
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return f"{safe}_{digest}"
