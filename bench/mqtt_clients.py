"""The plain paho-mqtt processes the MQTT benchmark measures the bridge against.

``publish``: publish every (topic, payload) of a file with QoS 1, the best settings known on
this machine (``shared`` broker baselines): the network thread, paho's own inflight limit off
and a window of 1,000 outstanding publishes kept by the application, TCP_NODELAY.
``paced``: publish CloudEvent-shaped payloads at a fixed rate, each stamped with the time.
``subscribe``: count messages and measure latency from each payload's ``time`` to receipt.

Usage: ``python bench/mqtt_clients.py publish PORT FILE`` |
``paced PORT COUNT RATE`` | ``subscribe PORT TOPIC COUNT TIMEOUT``
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WINDOW = 1000


def client(name: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)

    def nodelay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    c.on_socket_open = nodelay
    return c


def publish(port: int, path: str) -> None:
    messages: list[tuple[str, bytes]] = []
    with open(path, "rb") as stream:
        for line in stream:
            name, _, payload = line.rstrip(b"\n").partition(b"\t")
            messages.append((name.decode(), payload))
    window = threading.Semaphore(WINDOW)
    done = threading.Event()
    acked = [0]

    def on_publish(*_args: object) -> None:
        window.release()
        acked[0] += 1
        if acked[0] == len(messages):
            done.set()

    c = client("plain-publisher")
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    for topic, payload in messages:
        window.acquire()
        c.publish(topic, payload, qos=1)
    done.wait(600)
    c.disconnect()
    c.loop_stop()


def paced(port: int, count: int, rate: float) -> None:
    c = client("plain-paced")
    c.connect("127.0.0.1", port)
    c.loop_start()
    time.sleep(0.5)
    interval = 1.0 / rate
    start = time.monotonic()
    for index in range(count):
        delay = start + index * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        payload = json.dumps({"specversion": "1.0", "id": str(index), "time": now, "data": {}})
        c.publish("plain/paced", payload, qos=1)
    time.sleep(1.0)
    c.disconnect()
    c.loop_stop()


def parse_time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def subscribe(port: int, topic: str, count: int, timeout: float) -> None:
    latencies: list[float] = []
    done = threading.Event()
    ready = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received = time.time()
        if message.retain:
            return
        body = json.loads(message.payload)
        if "time" in body:
            latencies.append(received - parse_time(body["time"]))
        if len(latencies) >= count:
            done.set()

    c = client("bench-subscriber")
    c.on_message = on_message

    def on_connect(cl: mqtt.Client, *_args: Any) -> None:
        cl.subscribe(topic, qos=1)
        ready.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait(10)
    print("ready", flush=True)
    done.wait(timeout)
    c.disconnect()
    c.loop_stop()
    print(json.dumps({"received": len(latencies), "latencies": latencies}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "publish":
        publish(int(args[0]), args[1])
    elif command == "paced":
        paced(int(args[0]), int(args[1]), float(args[2]))
    elif command == "subscribe":
        subscribe(int(args[0]), args[1], int(args[2]), float(args[3]))
    else:
        sys.exit(__doc__)
