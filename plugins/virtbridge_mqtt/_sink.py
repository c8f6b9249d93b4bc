"""The MQTT sink: events, retained states, the bridge's status and Home Assistant discovery.

Publishing is pipelined: every batch is handed to the broker at once and acknowledged later
(the worker keeps up to ``max_inflight`` events outstanding); a batch's acknowledgement
completes when the broker has acknowledged every message in it, the retained states
included.  While the connection is down nothing new is published; paho keeps what was in
flight and sends it again, in order, as soon as the broker is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import msgspec
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

import virtbridge

from ._config import MqttConfig
from ._connection import ConnectError, Connection, PackedProperties, Will, new_properties
from ._topics import OFFLINE, ONLINE, Layout

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
TRANSIENT = {0x97, 0x91}
"""PUBACK reasons worth another try (quota exceeded, packet id in use); other failures are
refusals for good."""


class MqttSink(virtbridge.Sink):
    def __init__(self, config: MqttConfig, ctx: virtbridge.SinkContext) -> None:
        self.config = config
        self.ctx = ctx
        self.batch_size = config.batch_size
        self.window = config.max_inflight
        self.layout = Layout(config.topic_prefix, ctx.host, config.homeassistant_prefix)
        self.qos = config.qos
        self.v5 = config.protocol == "5"
        self.binary = config.content_mode == "binary"
        self.conn = self._connection(config.client_id or f"virtbridge-{ctx.host}", will=True)
        self.conn.on_connected = self._connected
        self.conn.on_acked = self._acked
        self.conn.on_message = self._message
        self._pending: dict[int, tuple[virtbridge.Acks, virtbridge.Record | None]] = {}
        """Message id → what waits for its acknowledgement."""
        self.states = virtbridge.DomainStates(ctx.host)
        self._waiting: list[virtbridge.Acks] = []
        """Batches whose states wait for the next flush."""
        self._states_due = virtbridge.OneAtATime(self._flush)
        self.discovered: set[str] = set()
        self._encode = msgspec.json.Encoder().encode
        self._properties = self._event_properties()
        self._state_properties = self._json_properties()
        self.published = 0

    def _connection(self, client_id: str, *, will: bool) -> Connection:
        config = self.config
        return Connection(
            config.endpoint,
            client_id=client_id,
            protocol=config.protocol,
            persistent=will and config.qos > 0,
            keepalive=config.keepalive,
            logger=self.ctx.logger,
            tls=config.tls_context(),
            username=config.username,
            password=config.password,
            will=Will(self.layout.status, OFFLINE) if will else None,
            session_expiry=config.session_expiry,
            connect_timeout=config.connect_timeout,
            reconnect_max=config.reconnect_max,
        )

    def _event_properties(self) -> Properties | None:
        if not self.v5 or self.binary:
            return None
        properties = new_properties()
        properties.ContentType = CONTENT_TYPE
        properties.PayloadFormatIndicator = 1
        if self.config.message_expiry:
            properties.MessageExpiryInterval = self.config.message_expiry
        return PackedProperties(properties)

    def _json_properties(self) -> Properties | None:
        if not self.v5:
            return None
        properties = new_properties()
        properties.ContentType = "application/json"
        properties.PayloadFormatIndicator = 1
        return PackedProperties(properties)

    # -- the Sink interface ---------------------------------------------------------------------

    async def open(self) -> None:
        self.conn.start()

    async def publish(
        self, records: Sequence[virtbridge.Record]
    ) -> virtbridge.Acknowledgement | None:
        conn = self.conn
        if not conn.connected:
            await conn.wait_up()
        wait = self.qos > 0
        acks = virtbridge.Acks()
        pending = self._pending
        publish, qos, layout, ctx = conn.publish, self.qos, self.layout, self.ctx
        for record in records:
            event = record.event
            topic = ctx.topic(record, layout.event(event.domain.name, event.kind.kind))
            payload, properties = self._payload(record)
            mid = publish(topic, payload, qos, False, properties)
            if wait:
                acks.expect()
                pending[mid] = (acks, record)
        conn.write_now()
        if self.config.retain_state and self.states.note(records):
            # States go out after the events, one flush at a time: a lone event's at the
            # end of this turn of the loop; in a burst, what changed while the previous
            # flush was on its way goes together, a domain that changed many times once.
            acks.expect()
            self._waiting.append(acks)
            self._states_due.request()
        if not wait:  # at most once: nothing comes back to wait for
            return None
        return acks.seal()

    def _flush(self) -> asyncio.Future[None]:
        """Publish the states that changed since the last flush; the batches that changed
        them are acknowledged when these are (and so is what this returns)."""
        waiting, self._waiting = self._waiting, []
        flush = virtbridge.Acks()
        for name, status in self.states.changes().items():
            for mid in self._state(name, status):
                flush.expect()
                self._pending[mid] = (flush, None)
        done = flush.seal()
        virtbridge.follow(done, waiting)
        self.conn.write_now()
        return done

    def _payload(self, record: virtbridge.Record) -> tuple[bytes, Properties | None]:
        envelope = self.ctx.cloudevent(record)
        if not self.binary:
            return self._encode(envelope), self._properties
        data = envelope.pop("data")
        properties = new_properties()
        properties.ContentType = envelope.pop("datacontenttype", "application/json")
        properties.PayloadFormatIndicator = 1
        properties.UserProperty = [(key, str(value)) for key, value in envelope.items()]
        if self.config.message_expiry:
            properties.MessageExpiryInterval = self.config.message_expiry
        return self._encode(data), properties

    def _state(self, name: str, status: virtbridge.DomainStatus | None) -> list[int]:
        """Publish a changed state (and discovery for a new domain); returns the ids."""
        layout, publish, qos = self.layout, self.conn.publish, max(self.qos, 1)
        mids = []
        if status is None:  # undefined: clear what any run of ours left retained
            mids.append(publish(layout.state(name), b"", qos, True))
            if self.config.homeassistant:
                self.discovered.discard(name)
                mids.append(publish(layout.ha_config(name), b"", qos, True))
            return mids
        mids.append(
            publish(layout.state(name), self._encode(status), qos, True, self._state_properties)
        )
        if self.config.homeassistant and name not in self.discovered:
            self.discovered.add(name)
            mids.append(self._discovery(name, status.uuid))
        return mids

    def _discovery(self, name: str, uuid: str | None) -> int:
        document = self.layout.ha_discovery(name, uuid)
        return self.conn.publish(self.layout.ha_config(name), self._encode(document), 1, True)

    # -- connection events ----------------------------------------------------------------------

    def _connected(self, session_present: bool) -> None:
        """On every (re)connect, before paho re-sends what was in flight: say we are online;
        when the broker forgot our session it may have lost retained messages too, so send
        the states and discovery documents again."""
        conn, layout = self.conn, self.layout
        conn.publish(layout.status, ONLINE, 1, True)
        if self.config.homeassistant:
            conn.subscribe([(layout.ha_birth, 1)])
        if session_present:
            return
        current = self.states.current
        for name, status in current.items():
            conn.publish(
                layout.state(name),
                self._encode(status),
                max(self.qos, 1),
                True,
                self._state_properties,
            )
        if self.config.homeassistant:
            for name in self.discovered:
                self._discovery(name, current[name].uuid if name in current else None)

    def _acked(self, mid: int, reason: ReasonCode | None) -> None:
        waiting = self._pending.pop(mid, None)
        if waiting is None:
            return
        acks, record = waiting
        if reason is None or not reason.is_failure:
            acks.ok()
        elif reason.value in TRANSIENT:
            self.states.forget()  # the batch goes again, and its states with it
            acks.failed(ConnectionError(f"the broker said: {reason.getName()}"))
        else:
            acks.refused(record)

    def _message(self, message: Any) -> None:
        if message.topic == self.layout.ha_birth and message.payload == ONLINE:
            current = self.states.current
            for name in self.discovered:  # Home Assistant restarted: announce again
                self._discovery(name, current[name].uuid if name in current else None)

    async def close(self) -> None:
        conn = self.conn
        self._states_due.run_now()
        if conn.connected:
            # A clean disconnect sends no last will: leave "offline" ourselves.
            offline = virtbridge.Acks()
            offline.expect()
            self._pending[conn.publish(self.layout.status, OFFLINE, 1, True)] = (offline, None)
            conn.write_now()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(offline.seal(), 2.0)
        await conn.close()
        for acks, _ in self._pending.values():
            if not acks.future.done():
                acks.future.cancel()
        self._pending.clear()

    async def check(self) -> str:
        probe = self._connection(
            (self.config.client_id or f"virtbridge-{self.ctx.host}") + "-check", will=False
        )
        try:
            await probe.connect()
        except ConnectError as exc:
            raise ConnectionError(str(exc)) from None
        finally:
            await probe.close()
        tls = ", TLS" if self.config.endpoint.tls else ""
        return f"connected to {probe.endpoint.address} (MQTT {self.config.protocol}{tls})"

    def status(self) -> dict[str, Any]:
        conn = self.conn
        figures: dict[str, Any] = {
            "connected": conn.connected,
            "broker": conn.endpoint.address,
            "unacknowledged": len(self._pending),
            "reconnects": conn.disconnects,
            "domains": len(self.states.current),
        }
        if not conn.connected and conn.error:
            figures["last_error"] = conn.error
            figures["last_error_at"] = conn.error_at
        return figures
