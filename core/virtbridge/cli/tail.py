"""``virtbridge tail URL``: read what bridges published to a bus and print it like the
domain-events printer (libvirt's event-test examples, over the bus, from any machine).

The feed for the URL's scheme comes from a plugin (``virtbridge_tail_types``); events are
printed by the same sinks ``virtbridge replay`` prints with, so the lines are identical.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any
from urllib.parse import urlsplit

from virtbridge.config import load as _config
from virtbridge.errors import ConfigError
from virtbridge.outbox.records import Record
from virtbridge.plugin.api import Sink, SinkContext, TailOptions, TailType
from virtbridge.plugin.loading import the_offer
from virtbridge.runtime.contexts import quiet_stdout
from virtbridge.wire.cloudevents import CloudEventBuilder, DomainStatus, WireEvent

log = logging.getLogger("virtbridge.tail")


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    tail = sub.add_parser(
        "tail",
        parents=[common],
        help="print the events bridges publish to a bus",
        description="Read a bus (mqtt://HOST:PORT[/PREFIX], nats://HOST:PORT): first every "
        "domain's current state, then events as they arrive, printed like the domain-events "
        "sink.",
    )
    tail.add_argument("url", help="mqtt://, mqtts://, ws://, wss:// or nats://, tls:// URL")
    tail.add_argument("--host", help="only this bridge host's domains")
    tail.add_argument("--domain", help="only this domain")
    tail.add_argument(
        "--format",
        choices=("python", "c", "virsh", "json"),
        default="python",
        help="event-test.py (default), event-test.c, virsh event, or the CloudEvents as JSON",
    )
    tail.add_argument("--stream", help="JetStream stream to read (NATS; default: none)")
    tail.add_argument("--bucket", help="key-value bucket with the states (NATS)")
    since = tail.add_mutually_exclusive_group()
    since.add_argument("--since", metavar="TIME", help="events since this RFC 3339 time")
    since.add_argument("--all", action="store_true", help="every event the bus still keeps")
    since.add_argument("--new", action="store_true", help="only new events (the default)")
    tail.add_argument("--prefix", help="topic/subject prefix (default: virtbridge)")
    tail.add_argument("--user", default="", help="user name ($VIRTBRIDGE_PASSWORD: password)")
    tail.add_argument("--tls-ca", default="", metavar="FILE", help="CA certificates to trust")
    tail.add_argument("--tls-cert", default="", metavar="FILE", help="client certificate")
    tail.add_argument("--tls-key", default="", metavar="FILE", help="client certificate's key")
    tail.add_argument(
        "--tls-insecure", action="store_true", help="accept a certificate for another name"
    )
    tail.add_argument("--no-states", action="store_true", help="do not print current states")
    tail.add_argument("--count", type=int, default=0, help="exit after this many events")
    tail.add_argument(
        "--timeout", type=float, default=0.0, help="exit after this many seconds (0: never)"
    )
    tail.set_defaults(handler=cmd_tail)


def cmd_tail(args: argparse.Namespace) -> int:
    scheme = urlsplit(args.url).scheme
    since = "all" if args.all else args.since or "new"
    options = TailOptions(
        url=args.url,
        host=args.host,
        domain=args.domain,
        states=not args.no_states,
        since=since,
        stream=args.stream,
        bucket=args.bucket,
        prefix=args.prefix,
        username=args.user,
        password=os.environ.get("VIRTBRIDGE_PASSWORD", ""),
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_insecure=args.tls_insecure,
    )
    # --format json prints the CloudEvents as they were on the bus; the others print through
    # the domain-events sink, as `virtbridge replay` does.
    printer = {"type": "null"} if args.format == "json" else {"type": "domain-events"}
    if args.format != "json":
        printer["format"] = args.format
    config = _config.load(
        None,
        data={"bridge": {"outbox": "memory", "control_socket": "off"}, "sinks": [printer]},
        extra_plugins=args.plugin,
        disabled_plugins=args.disable_plugin,
    )
    offers = config.hooks.tail_types().get(scheme, [])
    if not offers:
        known = ", ".join(sorted(config.hooks.tail_types())) or "none installed"
        raise ConfigError(f"cannot read {scheme or 'this'}:// URLs (known schemes: {known})")
    feed = the_offer(offers, f"reading {scheme}://")
    ctx = PrintContext()
    sink = config.sinks[0].create_sink(ctx)
    return asyncio.run(_tail(feed, options, sink, args, ctx))


async def _tail(
    feed: TailType, options: TailOptions, sink: Sink, args: argparse.Namespace, ctx: PrintContext
) -> int:
    await sink.open()
    try:
        work = asyncio.ensure_future(_print(feed, options, sink, args, ctx))
        try:
            await asyncio.wait_for(work, args.timeout or None)
        except asyncio.TimeoutError:
            return 0
        return 0
    except (ConnectionError, OSError, ValueError) as exc:
        print(f"virtbridge: tail {options.url}: {exc}", file=sys.stderr)
        return 1
    finally:
        await sink.close()


async def _print(
    feed: TailType, options: TailOptions, sink: Sink, args: argparse.Namespace, ctx: PrintContext
) -> None:
    events = 0
    json_output = args.format == "json"
    items = feed.open(options)
    try:
        async for item in items:
            value = item.value
            if isinstance(value, DomainStatus):
                line = item.raw.decode() if json_output else describe_status(value, args.format)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                continue
            if json_output:
                sys.stdout.buffer.write(item.raw.rstrip(b"\n") + b"\n")
                sys.stdout.flush()
            else:
                await _publish(sink, value)
            events += 1
            if ctx.closed or (args.count and events >= args.count):
                break
    except BrokenPipeError:
        ctx.stdout_closed()  # the reader is gone: stop, quietly
    await _close(items)


async def _publish(sink: Sink, value: WireEvent) -> None:
    record = Record(value.sequence, value.id, value.event, value.attributes)
    ack = await sink.publish([record])
    if ack is not None:
        await ack


async def _close(items: Any) -> None:
    close = getattr(items, "aclose", None)
    if close is not None:
        await close()


def describe_status(status: DomainStatus, style: str) -> str:
    """One line for a domain's current state, in the spirit of each printer's style."""
    state = status.state.lower()
    reason = status.reason.lower()
    if style == "virsh":
        return f"state of domain '{status.domain}': {state} ({reason})"
    return f"Domain {status.domain}({status.id}) state: {state} ({reason})"


class PrintContext(SinkContext):
    """The context of a printer that runs without a bridge (``tail``)."""

    name = "tail"
    host = ""
    logger = log

    def __init__(self) -> None:
        self._builder = CloudEventBuilder("virtbridge://")
        self.closed = False

    def stdout_closed(self) -> None:
        quiet_stdout()
        self.closed = True

    def cloudevent(self, record: Record) -> dict[str, Any]:
        return self._builder.build(record.event, record.id, record.seq, record.attributes)

    def topic(self, record: Record, default: str) -> str:
        return default
