"""The bridge's side of the control socket: ``ctl`` verbs and status requests.

The service sees the bridge as :class:`Controlled`: its configuration, engine, figures, the
owner of each domain, a way to feed an intent, and taps on a domain's events."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Protocol

import msgspec

from virtbridge.config.load import Config
from virtbridge.engine.engine import Engine, Outcome
from virtbridge.engine.events import Event
from virtbridge.engine.payloads import EventID
from virtbridge.engine.signals import Intent, IntentKind
from virtbridge.engine.states import REASONS, DomainState, PausedReason
from virtbridge.engine.time import Timestamp
from virtbridge.runtime.contexts import SourceRunner
from virtbridge.runtime.control_socket import VERBS, ControlServer

log = logging.getLogger("virtbridge")

SETTLING_VERBS = frozenset({"start", "suspend", "resume", "destroy"})
"""ctl verbs whose answer waits until the hypervisor has carried them out (up to 5 s)."""


class Controlled(Protocol):
    """What the control service needs of the bridge."""

    config: Config
    engine: Engine
    taps: dict[str, list[list[Event]]]
    """domain → lists that every event of the domain is appended to while a request waits."""

    def status(self) -> dict[str, Any]: ...

    def owner(self, domain: str) -> SourceRunner | None: ...

    async def intent(self, signal: Intent) -> Outcome: ...


class ControlService:
    """Answers control requests for one bridge."""

    def __init__(self, bridge: Controlled) -> None:
        self.bridge = bridge
        self.server: ControlServer | None = None

    def control_path(self) -> Path | None:
        setting = self.bridge.config.bridge.control_socket
        if setting == "off":
            return None
        if setting:
            return Path(setting)
        return Path(self.bridge.config.bridge.state_dir) / "control.sock"

    async def start(self) -> None:
        path = self.control_path()
        if path is None:
            return
        server = ControlServer(path, self.handle)
        try:
            await server.start()
        except OSError as exc:
            log.warning(
                "no control socket (virtbridge ctl/status will not reach this bridge): %s", exc
            )
            return
        self.server = server

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"ok": True, "status": self.bridge.status()}
        if op == "domains":
            views = [self.bridge.engine.view(name) for name in self.bridge.engine.names()]
            return {"ok": True, "domains": [msgspec.to_builtins(v) for v in views if v is not None]}
        if op != "ctl":
            return {"ok": False, "error": f"unknown operation {op!r}"}
        domain, verb = request.get("domain"), request.get("verb")
        if not isinstance(domain, str) or not domain:
            return {"ok": False, "error": "missing domain"}
        if verb not in VERBS:
            return {"ok": False, "error": f"unknown verb {verb!r} (one of: {', '.join(VERBS)})"}
        seen: list[Event] = []
        self.bridge.taps.setdefault(domain, []).append(seen)
        try:
            error, acting = await self._ctl(domain, verb)
            if error is None and acting and verb in SETTLING_VERBS:
                await self._settle(domain, seen)
        finally:
            self.bridge.taps[domain].remove(seen)
            if not self.bridge.taps[domain]:
                del self.bridge.taps[domain]
        return {
            "ok": error is None,
            "error": error,
            "events": [event.describe() for event in seen],
            "state": self._state_of(domain),
        }

    async def _ctl(self, domain: str, verb: str) -> tuple[str | None, bool]:
        """Carry out a ctl verb: libvirt's error or None, and whether the hypervisor was asked
        to act (a no-op, such as suspending a paused domain, has no answer to wait for)."""
        if verb == "start":
            owner = self.bridge.owner(domain)
            if owner is None:
                return f"no source here can start domain {domain!r}", False
            error = await owner.source.start_domain(domain)
            return error, error is None
        owner = self.bridge.owner(domain)
        if domain not in self.bridge.engine and owner is not None:
            return "Requested operation is not valid: domain is not running", False
        refusal = owner.source.refuses(verb, domain) if owner is not None else None
        if refusal is not None:
            return refusal, False
        stamp = Timestamp.from_float(time.time())
        outcome = await self.bridge.intent(
            Intent(domain=domain, intent=IntentKind(verb), timestamp=stamp)
        )
        return outcome.error, bool(outcome.actions)

    async def _settle(self, domain: str, seen: list[Event], timeout: float = 5.0) -> None:
        """Wait (a little) for the hypervisor's answer, as libvirt's synchronous API does:
        until an event shows the domain left a transitional state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.bridge.engine.view(domain)
            transitional = view is not None and (
                view.state is DomainState.SHUTDOWN
                or (view.state is DomainState.PAUSED and view.reason == PausedReason.STARTING_UP)
            )
            if seen and not transitional and any(e.kind is EventID.LIFECYCLE for e in seen):
                return
            await asyncio.sleep(0.01)

    def _state_of(self, domain: str) -> str | None:
        view = self.bridge.engine.view(domain)
        if view is None:
            return None
        return f"{view.state.name}/{REASONS[view.state](view.reason).name}"
