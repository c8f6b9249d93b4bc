"""A plain paho-mqtt subscriber for the tests: what a consumer on the other side sees."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    at: float


class Subscriber:
    """Subscribes to ``topics`` on 127.0.0.1:``port`` and keeps every message.

    ``persistent``: a session the broker keeps across disconnects and broker restarts (with
    its persistence on), so nothing published meanwhile is missed."""

    def __init__(
        self,
        port: int,
        topics: Sequence[str] = ("virtbridge/#",),
        *,
        qos: int = 1,
        persistent: bool = False,
        client_id: str | None = None,
    ) -> None:
        self.topics = list(topics)
        self.qos = qos
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-sub-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.port = port

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object
    ) -> None:
        client.subscribe([(topic, self.qos) for topic in self.topics])
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Message(message.topic, message.payload, bool(message.retain), time.time())
            )

    def start(self, timeout: float = 10.0) -> Subscriber:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise TimeoutError("the subscriber did not connect")
        time.sleep(0.2)  # let the SUBACK arrive
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout: float) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            messages = self.snapshot()
            if predicate(messages):
                return messages
            if time.monotonic() > deadline:
                return messages
            time.sleep(0.05)

    def __enter__(self) -> Subscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def retained(
    port: int, topic: str = "virtbridge/#", wait: float = 1.0, limit: float = 20.0
) -> dict[str, bytes]:
    """Every retained message under ``topic``, as a new subscriber gets them: collected for
    at least ``wait`` seconds and until none has arrived for ``wait`` seconds (a loaded broker
    takes a while to send thousands), at most ``limit`` seconds."""
    sub = Subscriber(port, [topic])
    sub.start()
    started = time.monotonic()
    seen, quiet_since = -1, started
    while time.monotonic() - started < limit:
        count = len(sub.snapshot())
        now = time.monotonic()
        if count != seen:
            seen, quiet_since = count, now
        elif now - quiet_since >= wait and now - started >= wait:
            break
        time.sleep(0.05)
    sub.stop()
    return {m.topic: m.payload for m in sub.snapshot() if m.retain}
