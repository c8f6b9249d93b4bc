"""The ``virtbridge`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import virtbridge
from virtbridge.cli import tail as _cli_tail
from virtbridge.cli.control import cmd_ctl, cmd_dead_letters, cmd_record, cmd_status
from virtbridge.config import load as _config
from virtbridge.config.load import Config
from virtbridge.errors import ConfigError
from virtbridge.runtime.bridge import Bridge
from virtbridge.runtime.control_socket import VERBS

EXAMPLES = """\
examples:
  virtbridge run                    replay the bundled QEMU traces to the domain-events printer
  virtbridge run -c /etc/virtbridge/virtbridge.toml
  virtbridge check -c virtbridge.toml --connect
  virtbridge replay trace.jsonl --format virsh
  virtbridge replay 'traces/*.jsonl' --format json | jq .data.event
  virtbridge plugins
  virtbridge ctl vm1 shutdown             ask the running bridge to shut vm1 down
  virtbridge status --domains
  virtbridge record --qmp /var/run/qemu-server/100.qmp -o bug.jsonl
  virtbridge tail mqtt://broker:1883 --format virsh
  virtbridge tail nats://nats1:4222 --stream VIRTBRIDGE --all --domain vm1
"""

log = logging.getLogger("virtbridge")


def bundled_traces() -> Path | None:
    """The recorded QEMU traces shipped with virtbridge (source tree or installed copy)."""
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[3] / "examples" / "traces",
        Path(sys.prefix) / "share" / "virtbridge" / "traces",
    ):
        if any(candidate.glob("*.jsonl")):
            return candidate
    return None


def demo_config() -> dict[str, Any]:
    traces = bundled_traces()
    if traces is None:
        raise ConfigError(
            "no configuration given and the bundled traces are not installed; use -c FILE"
        )
    return {
        # A demonstration: nothing to keep and nobody to answer, so it writes nothing (no
        # state directory, every run replays everything again) and listens nowhere (no
        # control socket, no metrics), and never meets a real bridge or another demo.
        "bridge": {"outbox": "memory", "control_socket": "off", "metrics": ""},
        "sources": [{"type": "replay", "path": str(traces / "*.jsonl")}],
        "sinks": [{"type": "domain-events", "format": "python"}],
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="virtbridge",
        description="libvirt-compatible domain events from QEMU and libvirt, forwarded to MQTT, "
        "NATS/JetStream and logs through plugins.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"virtbridge {virtbridge.__version__}"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    common.add_argument("-q", "--quiet", action="count", default=0, help="only errors")
    common.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="load a plugin (module or .py path)",
    )
    common.add_argument(
        "--disable-plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="block a plugin by name",
    )
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=os.environ.get("VIRTBRIDGE_CONFIG"),
        help="configuration file (default: $VIRTBRIDGE_CONFIG)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[common, config],
        help="run the bridge (the main job)",
        description="Run the bridge. Without a configuration, replay the bundled QEMU traces "
        "to the domain-events printer.",
    )
    run.set_defaults(handler=cmd_run)

    check = sub.add_parser(
        "check",
        parents=[common, config],
        help="validate a configuration",
        description="Validate a configuration without connecting; with --connect also try "
        "every source and sink once.",
    )
    check.add_argument("--connect", action="store_true", help="also try every source and sink")
    check.set_defaults(handler=cmd_check)

    plugins = sub.add_parser(
        "plugins",
        parents=[common, config],
        help="list plugins, their hooks and types",
    )
    plugins.set_defaults(handler=cmd_plugins)

    replay = sub.add_parser(
        "replay",
        parents=[common],
        help="print the events of trace files",
        description="Feed trace files to the engine and print every event.",
    )
    replay.add_argument("traces", nargs="+", metavar="TRACE", help="trace files or globs")
    replay.add_argument(
        "--format",
        choices=("python", "c", "virsh", "json"),
        default="python",
        help="event-test.py (default), event-test.c, virsh event --loop, or CloudEvents JSON lines",
    )
    replay.add_argument("--strict-libvirt", action="store_true", help="no virtbridge extensions")
    replay.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="1.0 = recorded speed (default: as fast as possible)",
    )
    replay.set_defaults(handler=cmd_replay)

    target = argparse.ArgumentParser(add_help=False)
    target.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=os.environ.get("VIRTBRIDGE_CONFIG"),
        help="the running bridge's configuration (to find its control socket)",
    )
    target.add_argument("--socket", metavar="PATH", help="the bridge's control socket")

    ctl = sub.add_parser(
        "ctl",
        parents=[common, target],
        help="ask a running bridge to act on a domain",
        description="Feed a control-plane intent to the running bridge's engine.",
    )
    ctl.add_argument("domain")
    ctl.add_argument("verb", choices=VERBS)
    ctl.set_defaults(handler=cmd_ctl)

    status = sub.add_parser(
        "status",
        parents=[common, target],
        help="show a running bridge's sinks, sources, domains",
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--domains", action="store_true", help="also list every domain's state")
    status.set_defaults(handler=cmd_status)

    dead = sub.add_parser(
        "dead-letters",
        parents=[common],
        help="list events brokers refused for good",
        description="List the dead-letter table of a bridge's durable outbox (read-only; the "
        "bridge may be running).",
    )
    dead.add_argument("-c", "--config", metavar="FILE", default=os.environ.get("VIRTBRIDGE_CONFIG"))
    dead.add_argument("--state-dir", metavar="DIR", help="the bridge's state directory")
    dead.add_argument("--sink", help="only this sink's")
    dead.add_argument("--json", action="store_true", help="one JSON object per line")
    dead.set_defaults(handler=cmd_dead_letters)

    record = sub.add_parser(
        "record",
        parents=[common],
        help="record a live QMP monitor as a trace file",
        description="Connect to a QMP socket and write what it reports in the trace format, "
        "until interrupted (Ctrl-C) or --duration.",
    )
    record.add_argument(
        "--qmp", required=True, metavar="SOCKET", help="unix socket path or host:port"
    )
    record.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="trace file ('-': stdout)"
    )
    record.add_argument(
        "--domain", help="the domain's name (default: QEMU's -name, else the file name)"
    )
    record.add_argument("--duration", type=float, help="stop after this many seconds")
    record.set_defaults(handler=cmd_record)

    _cli_tail.add_parser(sub, common)
    return parser


def setup_logging(verbose: int, quiet: int) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose == 1:
        level = logging.INFO
    elif verbose > 1:
        level = logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("asyncio").addFilter(_asyncio_noise)


def _asyncio_noise(record: logging.LogRecord) -> bool:
    """asyncio's remark about TLS streams closing (harmless, and about client libraries'
    internals) is not for users."""
    return "eof_received() has no effect when using ssl" not in record.getMessage()


def load_config(args: argparse.Namespace, data: dict[str, Any] | None = None) -> Config:
    path = getattr(args, "config", None)
    if path is None and data is None:
        data = demo_config()
    return _config.load(
        path,
        data=data,
        extra_plugins=args.plugin,
        disabled_plugins=args.disable_plugin,
    )


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args)
    # Whatever the bridge creates (the outbox, QEMU's logs and save images of guest memory)
    # is for its user only.
    os.umask(0o077)
    return asyncio.run(Bridge(config).run())


def cmd_replay(args: argparse.Namespace) -> int:
    if args.format == "json":
        sink: dict[str, Any] = {"type": "jsonl", "path": "-"}
    else:
        sink = {"type": "domain-events", "format": args.format}
    data = {
        "bridge": {
            "strict_libvirt": args.strict_libvirt,
            "control_socket": "off",
            "outbox": "memory",
        },
        "sources": [
            {"type": "replay", "path": args.traces, "speed": args.speed, "progress": False}
        ],
        "sinks": [sink],
    }
    config = _config.load(
        None, data=data, extra_plugins=args.plugin, disabled_plugins=args.disable_plugin
    )
    return asyncio.run(Bridge(config).run())


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args)
    where = config.path or "the built-in demo configuration"
    print(f"{where}: OK ({len(config.sources)} sources, {len(config.sinks)} sinks)")
    for component in [*config.sources, *config.sinks]:
        kind, name = component.kind, component.name
        print(f"  {kind} {name!r}: type {component.type_name} (plugin {component.plugin})")
    if not args.connect:
        return 0
    return asyncio.run(_connect_all(config))


async def _connect_all(config: Config) -> int:
    from virtbridge.runtime.contexts import BridgeSinkContext, BridgeSourceContext, SourceRunner

    failures = 0
    bridge = Bridge(config)
    for component in config.sources:
        try:
            source = component.create_source(BridgeSourceContext(SourceRunner(component, bridge)))
            result = await asyncio.wait_for(source.check(), 30)
            await source.close()
            print(f"  source {component.name!r}: {result}")
        except Exception as exc:
            failures += 1
            print(f"  source {component.name!r}: FAILED: {exc}")
    for component in config.sinks:
        try:
            sink = component.create_sink(BridgeSinkContext(bridge, component.name))
            result = await asyncio.wait_for(sink.check(), 30)
            await sink.close()
            print(f"  sink {component.name!r}: {result}")
        except Exception as exc:
            failures += 1
            print(f"  sink {component.name!r}: FAILED: {exc}")
    return 1 if failures else 0


def cmd_plugins(args: argparse.Namespace) -> int:
    config = load_config(args, data=None if args.config else {})
    manager = config.plugins.manager
    sources, sinks = config.hooks.types()
    for name, plugin in sorted(manager.list_name_plugin(), key=lambda item: item[0] or ""):
        info = config.plugins.info.get(name or "")
        origin = info.origin if info else "registered"
        print(f"{name}: {origin}")
        callers = manager.get_hookcallers(plugin) or []
        hooks = sorted(caller.name for caller in callers)
        print(f"  hooks: {', '.join(hooks) or '-'}")
        offered_types: list[tuple[str, dict[str, list[tuple[str, Any]]]]] = [
            ("source", sources),
            ("sink", sinks),
        ]
        for kind, offered in offered_types:
            for type_name, offers in sorted(offered.items()):
                for owner, factory in offers:
                    if owner == name:
                        extra = f" (needs virtbridge[{factory.extra}])" if factory.extra else ""
                        print(f"  {kind} type {type_name!r}: {factory.description}{extra}")
        for scheme, offers in sorted(config.hooks.tail_types().items()):
            for owner, feed in offers:
                if owner == name:
                    print(f"  tail feed '{scheme}://': {feed.description}")
    for name, error in sorted(config.plugins.broken.items()):
        print(f"{name}: FAILED TO LOAD: {error}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        args = parser.parse_args(["run", *(argv if argv is not None else sys.argv[1:])])
    setup_logging(args.verbose, args.quiet)
    try:
        result: int = args.handler(args)
        return result
    except ConfigError as exc:
        print(f"virtbridge: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (``| head``): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
