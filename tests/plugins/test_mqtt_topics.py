"""Topics on a real broker: hostile names stay one topic level, never a wildcard, and come
back intact; Home Assistant discovery documents use only keys Home Assistant documents, and
a domain that is undefined leaves nothing retained behind."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.bridge import spawn, virtbridge, write_config
from tests.support.brokers import Mosquitto
from tests.support.subscriber import Subscriber, retained
from virtbridge import unescape_token

ROOT = Path(__file__).resolve().parents[2]
POWEROFF = ROOT / "examples" / "traces" / "poweroff.jsonl"

HOSTILE = [
    "a/b",
    "#",
    "+",
    "$SYS",
    "x.>",
    "with spaces and\ttab",
    "%41 looks escaped",
    "ü" * 2048,  # 4 KiB of UTF-8
    "виртуальная-машина-日本",
]
HOSTILE_HOST = "hv/#+ $1"


def renamed(trace: Path, names: list[str], out: Path) -> Path:
    lines = [line for line in trace.read_text().splitlines() if line and not line.startswith("#")]
    with out.open("w") as stream:
        for name in names:
            for line in lines:
                stream.write(json.dumps({**json.loads(line), "domain": name}) + "\n")
    return out


def lifecycle(domain: str, *intents: str) -> list[str]:
    """Trace lines for intents; QEMU's RESUME follows a start, as it does for real."""
    lines = []
    for intent in intents:
        lines.append(json.dumps({"domain": domain, "signal": "intent", "intent": intent}))
        if intent == "start":
            lines.append(json.dumps({"domain": domain, "event": "RESUME"}))
    return lines


def test_hostile_names_never_add_a_level_or_a_wildcard(tmp_path: Path) -> None:
    trace = renamed(POWEROFF, HOSTILE, tmp_path / "hostile.jsonl")
    with Mosquitto(tmp_path / "broker") as broker, Subscriber(broker.port, ["#"]) as subscriber:
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host=HOSTILE_HOST,
            sources=[{"type": "replay", "path": str(trace), "progress": False}],
            sinks=[{"type": "mqtt", "url": broker.url()}],
        )
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=60)
        assert bridge.returncode == 0, err
        messages = subscriber.wait_for(lambda m: any(x.payload == b"offline" for x in m), 10)
    seen: set[str] = set()
    for message in messages:
        levels = message.topic.split("/")
        assert not {"+", "#"} & set(message.topic), message.topic
        assert levels[0] == "virtbridge"
        assert unescape_token(levels[1]) == HOSTILE_HOST
        if levels[2] == "status":
            assert len(levels) == 3
            continue
        assert len(levels) == 5 and levels[2] == "domain", message.topic
        name = unescape_token(levels[3])
        seen.add(name)
        if levels[4] == "state":
            assert json.loads(message.payload)["domain"] == name
        else:
            event = json.loads(message.payload)
            assert event["subject"] == name and event["data"]["domain"] == name
    assert seen == set(HOSTILE)


def test_tail_prints_hostile_names_back(tmp_path: Path) -> None:
    trace = renamed(POWEROFF, HOSTILE, tmp_path / "hostile.jsonl")
    with Mosquitto(tmp_path / "broker") as broker:
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host=HOSTILE_HOST,
            sources=[{"type": "replay", "path": str(trace), "progress": False}],
            sinks=[{"type": "mqtt", "url": broker.url()}],
        )
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=60)
        assert bridge.returncode == 0, err
        # Retained states only: every domain, by name, through the escaped topics.
        result = virtbridge(
            "tail", broker.url(), "--format", "json", "--timeout", "2", "--host", HOSTILE_HOST
        )
        assert result.returncode == 0, result.stderr
        states = [json.loads(line) for line in result.stdout.splitlines()]
        assert sorted(s["domain"] for s in states) == sorted(HOSTILE)
        assert {s["state"] for s in states} == {"SHUTOFF"}
        for name in ("a/b", "x.>", "ü" * 2048):
            one = virtbridge(
                "tail", broker.url(), "--timeout", "1", "--domain", name, "--format", "virsh"
            )
            assert one.stdout == f"state of domain '{name}': shutoff (shutdown)\n", one.stderr


# What Home Assistant documents for an MQTT sensor's discovery payload (the MQTT Sensor
# integration's configuration variables, plus the discovery-only ``origin``).
HA_SENSOR_KEYS = {
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "default_entity_id",
    "device",
    "device_class",
    "enabled_by_default",
    "encoding",
    "entity_category",
    "entity_picture",
    "expire_after",
    "force_update",
    "icon",
    "json_attributes_template",
    "json_attributes_topic",
    "last_reset_value_template",
    "name",
    "object_id",
    "options",
    "payload_available",
    "payload_not_available",
    "platform",
    "qos",
    "state_class",
    "state_topic",
    "suggested_display_precision",
    "unique_id",
    "unit_of_measurement",
    "value_template",
    "origin",
}
HA_DEVICE_KEYS = {
    "configuration_url",
    "connections",
    "hw_version",
    "identifiers",
    "manufacturer",
    "model",
    "model_id",
    "name",
    "serial_number",
    "suggested_area",
    "sw_version",
    "via_device",
}
HA_ORIGIN_KEYS = {"name", "sw_version", "support_url"}
HA_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def test_home_assistant_discovery(tmp_path: Path) -> None:
    lines = [
        *lifecycle("kept", "define", "start"),
        *lifecycle("short-lived", "define", "start", "destroy", "undefine"),
        *lifecycle("a/b #", "define", "start"),
    ]
    trace = tmp_path / "defines.jsonl"
    trace.write_text("\n".join(lines) + "\n")
    with Mosquitto(tmp_path / "broker") as broker:
        config = write_config(
            tmp_path / "bridge.toml",
            state_dir=tmp_path / "state",
            host="hv01",
            sources=[{"type": "replay", "path": str(trace), "progress": False}],
            sinks=[{"type": "mqtt", "url": broker.url(), "homeassistant": True}],
        )
        bridge = spawn(config)
        _, err = bridge.communicate(timeout=60)
        assert bridge.returncode == 0, err
        kept = retained(broker.port, "#")
    configs = {
        topic: json.loads(payload)
        for topic, payload in kept.items()
        if topic.startswith("homeassistant/") and payload
    }
    assert len(configs) == 2  # the undefined domain's discovery was removed
    states = {
        topic: json.loads(payload) for topic, payload in kept.items() if topic.endswith("/state")
    }
    assert {s["domain"] for s in states.values()} == {"kept", "a/b #"}
    for topic, document in configs.items():
        prefix, component, node, obj, last = topic.split("/")
        assert (prefix, component, last) == ("homeassistant", "sensor", "config")
        assert HA_ID.match(node) and HA_ID.match(obj)
        assert set(document) <= HA_SENSOR_KEYS, set(document) - HA_SENSOR_KEYS
        assert set(document["device"]) <= HA_DEVICE_KEYS
        assert set(document["origin"]) <= HA_ORIGIN_KEYS
        assert HA_ID.match(document["unique_id"])
        assert all(HA_ID.match(i) for i in document["device"]["identifiers"])
        assert document["availability_topic"] == "virtbridge/hv01/status"
        assert kept[document["availability_topic"]] == b"offline"  # the bridge has stopped
        state = states[document["state_topic"]]
        assert document["json_attributes_topic"] == document["state_topic"]
        assert (state["state"], state["reason"]) == ("RUNNING", "BOOTED")
        assert state["state"].lower() in document["options"]
        assert document["device"]["name"] == state["domain"]
    assert len({d["unique_id"] for d in configs.values()}) == 2
