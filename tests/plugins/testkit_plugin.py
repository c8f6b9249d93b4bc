"""Test-only source and sink types: a live "ticker" source and a "slow" sink.

ticker: drives one domain through start, reset and guest-initiated reboots, forever (or
``count`` cycles), one signal every ``interval`` seconds.
slow: records what it is given; waits ``delay`` per batch; ``hang = true`` never returns;
``fail_every = N`` raises on every Nth batch; ``down_until = PATH`` fails until that file
exists; ``reject_kind = "reboot"`` refuses events of that kind for good (virtbridge.Rejected).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from typing import Any

import msgspec

import virtbridge


class TickerConfig(virtbridge.PluginConfig, kw_only=True, forbid_unknown_fields=True):
    domain: str = "tick"
    interval: float = 0.001
    count: int = 0
    """Cycles to run; 0 = forever."""
    domains: int = 1
    """Domains to tick in turn (named ``<domain>``, ``<domain>-1``, ...)."""
    finish: bool = False
    """Whether a bridge whose sources are all finished tickers stops (as after replays)."""


class TickerSource(virtbridge.Source):
    def __init__(self, config: TickerConfig, ctx: virtbridge.SourceContext) -> None:
        self.ctx = ctx
        self.config = config
        self.live = not config.finish

    async def run(self) -> None:
        ctx = self.ctx
        base = self.config.domain
        names = [base] + [f"{base}-{index}" for index in range(1, self.config.domains)]
        for name in names:
            await ctx.submit(virtbridge.Intent(domain=name, intent=virtbridge.IntentKind.START))
            await ctx.submit(virtbridge.QmpEvent(domain=name, event="RESUME"))
        cycle = 0
        while self.config.count == 0 or cycle < self.config.count:
            name = names[cycle % len(names)]
            cycle += 1
            await ctx.submit(virtbridge.QmpEvent(domain=name, event="RESET", data={"guest": True}))
            await asyncio.sleep(self.config.interval)


class ActorConfig(virtbridge.PluginConfig, kw_only=True, forbid_unknown_fields=True):
    """A source that owns one domain, powers it off through a burst of signals, and notes
    in ``report`` what the durable outbox held when each action reached it."""

    domain: str = "vm"
    report: str
    filler: int = 30
    """RTC changes fed before the power-off, so the burst is too large to store at once."""


class ActorSource(virtbridge.Source):
    def __init__(self, config: ActorConfig, ctx: virtbridge.SourceContext) -> None:
        self.ctx = ctx
        self.config = config
        self.state_dir = ""

    async def run(self) -> None:
        ctx = self.ctx
        name = self.config.domain
        ctx.claim(name)
        self.state_dir = str(ctx.state_dir)
        signals: list[virtbridge.Signal] = [
            virtbridge.Intent(domain=name, intent=virtbridge.IntentKind.START),
            virtbridge.QmpEvent(domain=name, event="RESUME"),
        ]
        signals += [
            virtbridge.QmpEvent(domain=name, event="RTC_CHANGE", data={"offset": i})
            for i in range(self.config.filler)
        ]
        signals.append(
            virtbridge.QmpEvent(
                domain=name, event="SHUTDOWN", data={"guest": True, "reason": "guest-shutdown"}
            )
        )
        await ctx.submit_many(signals)
        await asyncio.Event().wait()

    async def perform(self, action: virtbridge.Action) -> None:
        import sqlite3

        with sqlite3.connect(os.path.join(self.state_dir, "outbox.sqlite3")) as db:
            newest = db.execute("SELECT MAX(last) FROM chunks").fetchone()[0] or 0
            row = db.execute(
                "SELECT record FROM domains WHERE name = ?", (self.config.domain,)
            ).fetchone()
        with open(self.config.report, "a") as stream:
            stream.write(
                json.dumps(
                    {"action": type(action).__name__, "stored": newest, "record": row and row[0]}
                )
                + "\n"
            )


class SlowConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    path: str
    delay: float = 0.0
    hang: bool = False
    fail_every: int = 0
    down_until: str = ""
    reject_kind: str = ""
    batch_size: int = 64


class SlowSink(virtbridge.Sink):
    def __init__(self, config: SlowConfig, ctx: virtbridge.SinkContext) -> None:
        self.config = config
        self.batch_size = config.batch_size
        self.batches = 0

    async def publish(self, records: Sequence[virtbridge.Record]) -> None:
        self.batches += 1
        if self.config.hang:
            await asyncio.Event().wait()
        if self.config.fail_every and self.batches % self.config.fail_every == 0:
            raise ConnectionError("broker said no")
        if self.config.down_until and not os.path.exists(self.config.down_until):
            raise ConnectionError("broker is down")
        await asyncio.sleep(self.config.delay)
        refused = [r for r in records if r.event.kind.kind == self.config.reject_kind]
        with open(self.config.path, "a") as stream:
            for record in records:
                if record in refused:
                    continue
                stream.write(
                    json.dumps(
                        {"seq": record.seq, "id": record.id, "domain": record.event.domain.name}
                    )
                    + "\n"
                )
        if refused:
            reason = f"{len(refused)} {self.config.reject_kind} events are not welcome"
            raise virtbridge.Rejected(refused, reason)


@virtbridge.hookimpl
def virtbridge_source_types() -> list[virtbridge.SourceType[Any]]:
    return [
        virtbridge.SourceType("ticker", TickerConfig, TickerSource, "test ticker"),
        virtbridge.SourceType("actor", ActorConfig, ActorSource, "test source with actions"),
    ]


class AckingConfig(virtbridge.SinkConfig, kw_only=True, forbid_unknown_fields=True):
    """A sink whose broker acknowledges later: ``delay`` seconds after each batch."""

    path: str
    delay: float = 0.002
    window: int = 64
    batch_size: int = 8
    fail_at: list[int] = msgspec.field(default_factory=list)
    """Batches (counted from 1) at which the broker goes away: their acknowledgements fail,
    and so do those of every batch after them until the worker hands over again."""
    reject_kind: str = ""


class AckingSink(virtbridge.Sink):
    """Records every batch handed over (with the most records it ever had outstanding), and
    what was acknowledged, in ``path`` (one JSON object per line)."""

    def __init__(self, config: AckingConfig, ctx: virtbridge.SinkContext) -> None:
        self.config = config
        self.window = config.window
        self.batch_size = config.batch_size
        self.batches = 0
        self.outstanding = 0
        self.highest = 0
        self.down = False

    def _write(self, entry: dict[str, object]) -> None:
        with open(self.config.path, "a") as stream:
            stream.write(json.dumps(entry) + "\n")

    async def publish(
        self, records: Sequence[virtbridge.Record]
    ) -> virtbridge.Acknowledgement | None:
        self.batches += 1
        number = self.batches
        self.outstanding += len(records)
        seqs = [record.seq for record in records]
        if seqs[0] <= self.highest:
            self.down = False  # handed over again: the broker is back
        self.highest = max(self.highest, seqs[-1])
        if number in self.config.fail_at:
            self.down = True
        down = self.down
        self._write({"sent": seqs, "outstanding": self.outstanding})
        refused = [r for r in records if r.event.kind.kind == self.config.reject_kind]

        async def acknowledge() -> None:
            try:
                await asyncio.sleep(self.config.delay)
                if down:
                    raise ConnectionError(f"batch {number}: the broker went away")
                if refused:
                    raise virtbridge.Rejected(refused, "not welcome")
                self._write({"acked": seqs})
            finally:
                self.outstanding -= len(records)

        return asyncio.ensure_future(acknowledge())


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[Any]]:
    return [
        virtbridge.SinkType("slow", SlowConfig, SlowSink, "test sink"),
        virtbridge.SinkType("acking", AckingConfig, AckingSink, "test sink, late acks"),
    ]
