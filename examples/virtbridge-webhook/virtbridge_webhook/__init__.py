"""A virtbridge sink that POSTs events to a webhook as CloudEvents (structured JSON)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Sequence

import msgspec

import virtbridge


class WebhookConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    url: str
    events: list[str] = msgspec.field(default_factory=lambda: ["CRASHED"])
    """Lifecycle event types to forward (``CRASHED``, ``STOPPED``, ...); empty: every event."""
    timeout: float = 5.0
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("url: must start with http:// or https://")
        known = {member.name for member in virtbridge.EventType}
        for name in self.events:
            if name not in known:
                raise ValueError(f"events: unknown lifecycle event {name!r}")


class WebhookSink(virtbridge.Sink):
    batch_size = 32

    def __init__(self, config: WebhookConfig, ctx: virtbridge.SinkContext) -> None:
        self.config = config
        self.ctx = ctx
        self.wanted = {virtbridge.EventType[name] for name in config.events}

    def _forward(self, record: virtbridge.Record) -> bool:
        if not self.wanted:
            return True
        life = record.event.lifecycle
        return life is not None and life.event in self.wanted

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            self.config.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/cloudevents+json", **self.config.headers},
        )
        with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
            if response.status >= 300:
                raise ConnectionError(f"webhook answered HTTP {response.status}")

    async def publish(self, records: Sequence[virtbridge.Record]) -> None:
        for record in records:
            if self._forward(record):
                body = json.dumps(self.ctx.cloudevent(record)).encode()
                # urllib blocks: keep it off the event loop.
                await asyncio.to_thread(self._post, body)


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[WebhookConfig]]:
    return [
        virtbridge.SinkType(
            name="webhook",
            config=WebhookConfig,
            create=WebhookSink,
            description="POST events (default: crashes) to a webhook as CloudEvents",
        )
    ]
