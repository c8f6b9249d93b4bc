"""The commands that talk to a running bridge or its files: ctl, status, dead-letters, record."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from virtbridge.config import load as _config
from virtbridge.config.values import interpolate
from virtbridge.engine.states import REASONS, DomainState
from virtbridge.errors import BridgeNotRunning
from virtbridge.runtime.control_socket import request


def control_socket(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    settings: dict[str, Any] = {}
    if args.config:
        settings = _config.read_file(args.config).get("bridge", {})
        settings = interpolate(settings, os.environ, args.config, "bridge")
    if settings.get("control_socket"):
        return Path(settings["control_socket"])
    state = settings.get("state_dir") or _config.default_state_dir()
    return Path(os.path.expanduser(state)) / "control.sock"


def cmd_ctl(args: argparse.Namespace) -> int:
    message = {"op": "ctl", "domain": args.domain, "verb": args.verb}
    try:
        answer = asyncio.run(request(control_socket(args), message))
    except BridgeNotRunning as exc:
        print(f"virtbridge: {exc}: is it running?", file=sys.stderr)
        return 3
    for line in answer.get("events", []):
        print(line)
    if not answer.get("ok"):
        print(f"virtbridge: {args.verb} {args.domain}: {answer.get('error')}", file=sys.stderr)
        return 1
    print(f"{args.domain}: {answer.get('state') or 'not running'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        answer = asyncio.run(request(control_socket(args), {"op": "status"}))
        domains = (
            asyncio.run(request(control_socket(args), {"op": "domains"})).get("domains", [])
            if args.domains
            else []
        )
    except BridgeNotRunning as exc:
        print(f"virtbridge: {exc}: is it running?", file=sys.stderr)
        return 3
    status = answer["status"]
    if args.json:
        print(
            json.dumps({**status, "domain_states": domains} if args.domains else status, indent=2)
        )
        return 0
    print(
        f"bridge {status['host']}: up {status['uptime']:.0f} s, {status['domains']} domains, "
        f"outbox {status['outbox']}"
    )
    for name, sink in status["sinks"].items():
        state = "connected" if sink["connected"] else "DISCONNECTED"
        error = f", last error: {sink['last_error']}" if sink["last_error"] else ""
        print(
            f"  sink {name}: {state}, cursor {sink['cursor']}, lag {sink['lag']}, "
            f"delivered {sink['delivered']}, retries {sink['retries']}{error}"
        )
    for name, source in status["sources"].items():
        error = f", error: {source['error']}" if source["error"] else ""
        print(
            f"  source {name}: {source['state']}, {source['signals']} signals, "
            f"{source['events']} events{error}"
        )
    for plugin, count in status.get("plugin_errors", {}).items():
        print(f"  plugin errors {plugin}: {count}")
    for view in domains:
        domain_state = DomainState(view["state"])
        reason = REASONS[domain_state](view["reason"]).name
        print(f"  domain {view['name']}({view['id']}): {domain_state.name}/{reason}")
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    import sqlite3

    state = args.state_dir
    if state is None:
        settings = _config.read_file(args.config).get("bridge", {}) if args.config else {}
        state = settings.get("state_dir") or _config.default_state_dir()
    path = Path(os.path.expanduser(state)) / "outbox.sqlite3"
    if not path.exists():
        print(f"virtbridge: no outbox at {path}", file=sys.stderr)
        return 1
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    query = "SELECT sink, seq, id, error, at FROM dead_letters"
    rows = db.execute(
        query + (" WHERE sink = ? ORDER BY seq" if args.sink else " ORDER BY sink, seq"),
        (args.sink,) if args.sink else (),
    ).fetchall()
    for sink, seq, event_id, error, at in rows:
        if args.json:
            print(json.dumps({"sink": sink, "seq": seq, "id": event_id, "error": error, "at": at}))
        else:
            print(f"{sink}\t#{seq}\t{event_id}\t{error}")
    if not args.json:
        print(f"{len(rows)} dead letters", file=sys.stderr)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from virtbridge.cli.record import find_recorder, record

    config = _config.load(
        None,
        data={"bridge": {"outbox": "memory", "control_socket": "off"}},
        extra_plugins=args.plugin,
        disabled_plugins=args.disable_plugin,
    )
    recorder = find_recorder(config.hooks, "qmp")
    return asyncio.run(
        record(recorder, args.qmp, args.output, domain=args.domain, duration=args.duration)
    )
