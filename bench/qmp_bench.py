"""Benchmark the QMP attach source with real QEMU guests.

1. Latency: from a QMP event leaving QEMU (its QMP timestamp) to the event's line having
   been written (and flushed) by a ``jsonl`` sink. Idle guests are stopped and resumed over
   a second monitor (``stop``/``cont``, a few hundred events); the bridge runs as its own
   process (``virtbridge run``) with this file loaded as a plugin, which adds a
   ``timed-jsonl`` sink: the ``jsonl`` sink plus, per event, the wall-clock time its write
   returned. Reported: p50, p90, p99 and max, for each outbox.
2. Monitors per bridge: ``--monitors`` idle guests (about 50 MiB each) under one glob, one
   bridge attached to all; reported: the bridge's RSS and CPU at idle, in total and per
   monitor, against the same bridge with no guest. When the machine lacks the memory (or
   with ``--fake``), fake QMP servers in this process (``fake_qmp.py``) stand in for the
   guests, and the report says so.

``--guests 0`` or ``--monitors 0`` leaves a part out.

Usage: ``python bench/qmp_bench.py [--guests 4] [--cycles 60] [--monitors 100]
[--idle 10] [--outbox memory|sqlite|both] [--fake] [--json FILE]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Also loaded by the bridge as a plugin (by path): the bench directory is not on its path.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

import benchlib

benchlib.use_checkout()
ROOT = benchlib.ROOT

import virtbridge  # noqa: E402
from virtbridge_jsonl import JsonlConfig, JsonlSink  # noqa: E402

GUEST_MIB = 60  # what one idle guest costs, with a margin (measured: ~50 MiB RSS)


# -- the plugin the bridge loads: a jsonl sink that also notes when each write returned -------


class TimedJsonlConfig(JsonlConfig, kw_only=True, forbid_unknown_fields=True):
    times: str = ""
    """File that gets ``<sequence> <time.time() after the write>`` per event."""


class TimedJsonlSink(JsonlSink):
    def __init__(self, config: TimedJsonlConfig, ctx: virtbridge.SinkContext) -> None:
        super().__init__(config, ctx)
        self.times_path = config.times
        self.times: Any = None

    async def open(self) -> None:
        await super().open()
        self.times = open(self.times_path, "a")  # noqa: SIM115 - kept open for the sink's life

    async def publish(self, records: Sequence[virtbridge.Record]) -> None:
        await super().publish(records)
        written = time.time()
        self.times.write("".join(f"{record.seq} {written:.6f}\n" for record in records))
        self.times.flush()

    async def close(self) -> None:
        await super().close()
        if self.times is not None:
            self.times.close()


@virtbridge.hookimpl
def virtbridge_sink_types() -> list[virtbridge.SinkType[TimedJsonlConfig]]:
    return [
        virtbridge.SinkType(
            "timed-jsonl", TimedJsonlConfig, TimedJsonlSink, "jsonl, plus the write time per event"
        )
    ]


# -- guests and the bridge process --------------------------------------------------------------


def guest_argv(image: Path, directory: Path, tag: str) -> list[str]:
    """An idle guest with two monitors: ``<tag>.qmp`` for the bridge, ``<tag>.mon`` for us."""
    return [
        "qemu-system-x86_64", "-nodefaults", "-display", "none", "-machine", "pc,accel=tcg",
        "-m", "32", "-drive", f"file={image},format=raw,if=ide,snapshot=on",
        "-serial", f"file:{directory / f'{tag}.log'}", "-device", "pvpanic", "-no-shutdown",
        "-qmp", f"unix:{directory / f'{tag}.qmp'},server=on,wait=off",
        "-qmp", f"unix:{directory / f'{tag}.mon'},server=on,wait=off",
    ]  # fmt: skip


async def start_guests(image: Path, directory: Path, count: int) -> list[subprocess.Popen[bytes]]:
    from tests.support.guests import boot_marker
    from tests.support.qemu import wait_for_serial_async

    guests: list[subprocess.Popen[bytes]] = []
    for start in range(0, count, 10):  # ten at a time: two cores boot them without trouble
        batch = [f"vm{i:03d}" for i in range(start, min(start + 10, count))]
        for tag in batch:
            guests.append(
                subprocess.Popen(
                    guest_argv(image, directory, tag),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for tag in batch:
            await wait_for_serial_async(directory / f"{tag}.log", boot_marker("idle"), timeout=60)
    return guests


def stop_all(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)


def start_bridge(
    workdir: Path, pattern: str, outbox: str, name: str, scan_interval: float = 2.0
) -> subprocess.Popen[str]:
    """``virtbridge run`` attached to ``pattern`` (``scan_interval`` 2 s is the default)."""
    config = workdir / f"{name}.toml"
    config.write_text(
        f'[bridge]\nstate_dir = "{workdir / f"state-{name}"}"\noutbox = "{outbox}"\n'
        f'[[sources]]\ntype = "qmp"\npath = "{pattern}"\nscan_interval = {scan_interval}\n'
        f'[[sinks]]\ntype = "timed-jsonl"\npath = "{workdir / f"{name}.jsonl"}"\n'
        f'times = "{workdir / f"{name}.times"}"\n'
    )
    return subprocess.Popen(
        benchlib.bridge_argv(config, "-q", "--plugin", __file__),
        env=benchlib.child_env(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_bridge(bridge: subprocess.Popen[str]) -> None:
    bridge.send_signal(signal.SIGTERM)
    try:
        _, err = bridge.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        bridge.kill()
        _, err = bridge.communicate()
    if bridge.returncode != 0:
        print(f"  (bridge exited {bridge.returncode}: {err.strip()[-500:]})")


async def wait_lines(path: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"fewer than {count} lines in {path} after {timeout} s")


# -- 1. latency -----------------------------------------------------------------------------------


async def latency(
    image: Path, workdir: Path, guests: int, cycles: int, outbox: str
) -> dict[str, float]:
    from virtbridge_qmp import QmpClient

    directory = Path(tempfile.mkdtemp(prefix="vbl-", dir="/tmp"))
    processes = await start_guests(image, directory, guests)
    name = f"latency-{outbox}"
    bridge = start_bridge(workdir, str(directory / "*.qmp"), outbox, name, scan_interval=0.2)
    clients: list[QmpClient] = []
    try:
        await asyncio.sleep(1.0)  # the bridge attaches (silently: the guests were there first)
        for i in range(guests):
            client = QmpClient(directory / f"vm{i:03d}.mon")
            await client.connect()
            clients.append(client)

        async def drive(client: QmpClient) -> None:
            for _ in range(cycles):
                await client.execute("stop")
                await asyncio.sleep(0.01)
                await client.execute("cont")
                await asyncio.sleep(0.01)

        await asyncio.gather(*(drive(client) for client in clients))
        expected = guests * cycles * 2
        await wait_lines(workdir / f"{name}.times", expected, 30)
    finally:
        for client in clients:
            await client.close()
        stop_bridge(bridge)
        stop_all(processes)
        shutil.rmtree(directory, ignore_errors=True)
    written = {}
    for line in (workdir / f"{name}.times").read_text().splitlines():
        seq, when = line.split()
        written[int(seq)] = float(when)
    delays = []
    for line in (workdir / f"{name}.jsonl").read_text().splitlines():
        event = json.loads(line)
        stamp = event["data"]["cause"]["timestamp"]
        left = stamp["seconds"] + stamp["microseconds"] / 1e6
        delays.append((written[int(event["sequence"])] - left) * 1000)
    delays.sort()
    cut = statistics.quantiles(delays, n=100, method="inclusive")
    print(
        f"  outbox {outbox:6}: {len(delays)} events, QMP timestamp -> jsonl line written: "
        f"p50 {cut[49]:.2f} ms, p90 {cut[89]:.2f} ms, p99 {cut[98]:.2f} ms, "
        f"max {delays[-1]:.2f} ms",
        flush=True,
    )
    return {
        "events": len(delays),
        "p50": cut[49],
        "p90": cut[89],
        "p99": cut[98],
        "max": delays[-1],
    }


# -- 2. monitors per bridge --------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle_usage(pid: int, seconds: float) -> tuple[int, float]:
    """RSS (KiB) after ``seconds`` and the CPU % used over them."""
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return rss_kib(pid), (cpu_seconds(pid) - before) / seconds * 100


async def domains(config: Path) -> int:
    """How many domains the running bridge knows (``virtbridge status --json``)."""
    status = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "virtbridge", "status", "--json", "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await status.communicate()
    return int(json.loads(out)["domains"]) if status.returncode == 0 else 0


async def capacity(
    image: Path | None, workdir: Path, monitors: int, idle: float, fake: bool
) -> dict[str, float]:
    """One bridge watching ``monitors`` monitors under a glob, against one watching none:
    RSS (KiB) and CPU (%) at idle."""
    from fake_qmp import FakeMonitors

    directory = Path(tempfile.mkdtemp(prefix="vbm-", dir="/tmp"))
    processes: list[subprocess.Popen[bytes]] = []
    servers: FakeMonitors | None = None
    try:
        empty = start_bridge(workdir, str(directory / "none-*.qmp"), "memory", "empty")
        await asyncio.sleep(2)
        base_rss, base_cpu = await idle_usage(empty.pid, idle)
        stop_bridge(empty)
        started = time.monotonic()
        if fake:
            names = [f"vm{i:03d}" for i in range(monitors)]
            servers = await FakeMonitors(directory, names).start()
            what = f"{monitors} fake QMP servers (in this process, not QEMU)"
        else:
            assert image is not None
            processes = await start_guests(image, directory, monitors)
            what = f"{monitors} idle QEMU guests"
        print(f"  {what} up in {time.monotonic() - started:.1f} s")
        bridge = start_bridge(workdir, str(directory / "*.qmp"), "memory", "capacity")
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # every monitor attached
                if servers is not None:
                    attached = len(servers.ready)
                else:
                    attached = await domains(workdir / "capacity.toml")
                if attached >= monitors:
                    break
                if bridge.poll() is not None:
                    raise SystemExit(f"the bridge stopped ({bridge.returncode})")
                await asyncio.sleep(0.2 if servers is not None else 0.5)
            else:
                print("  (not every monitor was attached after 60 s)")
            await asyncio.sleep(1)
            rss, cpu = await idle_usage(bridge.pid, idle)
        finally:
            stop_bridge(bridge)
    finally:
        if servers is not None:  # the bridge has gone: each connection ends at its EOF
            await servers.close()
        stop_all(processes)
        shutil.rmtree(directory, ignore_errors=True)
    per_rss = (rss - base_rss) / monitors
    print(f"  bridge with no monitor: RSS {base_rss / 1024:.1f} MiB, CPU {base_cpu:.2f} %")
    print(
        f"  bridge with {monitors} monitors: RSS {rss / 1024:.1f} MiB, CPU {cpu:.2f} % "
        f"(idle, over {idle:.0f} s)"
    )
    print(f"  per monitor: {per_rss:.1f} KiB RSS, {(cpu - base_cpu) / monitors:.4f} % CPU")
    return {
        "monitors": monitors,
        "base_rss_kib": base_rss,
        "rss_kib": rss,
        "per_monitor_kib": per_rss,
        "base_cpu": base_cpu,
        "cpu": cpu,
        "fake": fake,
    }


def mem_available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    begun = time.monotonic()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--guests", type=int, default=4, help="guests for the latency run")
    parser.add_argument("--cycles", type=int, default=60, help="stop/cont cycles per guest")
    parser.add_argument("--monitors", type=int, default=100)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    parser.add_argument("--outbox", choices=("memory", "sqlite", "both"), default="both")
    parser.add_argument("--fake", action="store_true", help="fake QMP servers for part 2")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    fake = args.fake
    if args.monitors and not fake and mem_available_mib() < args.monitors * GUEST_MIB + 1024:
        print(f"not enough memory for {args.monitors} guests: using fake QMP servers")
        fake = True
    if args.guests or (args.monitors and not fake):
        benchlib.need_program("qemu-system-x86_64")
    from tests.support.guests import write_images

    figures: list[benchlib.Figure] = []
    with tempfile.TemporaryDirectory(prefix="virtbridge-qmp-bench-") as tmp:
        workdir = Path(tmp)
        image = write_images(workdir / "images", ("idle",))["idle"]
        if args.guests:
            print(f"1. latency, {args.guests} idle guests x {args.cycles} stop/cont cycles:")
            outboxes = ("memory", "sqlite") if args.outbox == "both" else (args.outbox,)
            for outbox in outboxes:
                cut = asyncio.run(latency(image, workdir, args.guests, args.cycles, outbox))
                name = "durable" if outbox == "sqlite" else "memory"
                what = f"{args.guests} guests stop/cont"
                for point in ("p50", "p99"):
                    figures.append(
                        benchlib.Figure(
                            "latency",
                            f"qmp.latency.qemu.{outbox}.{point}",
                            f"real QEMU ts → jsonl, {what}, {name}: {point}",
                            cut[point],
                            "ms",
                            params={"guests": args.guests, "cycles": args.cycles, **cut},
                        )
                    )
        if args.monitors:
            print(f"2. one bridge attached to {args.monitors} monitors (glob), at idle:")
            found = asyncio.run(capacity(image, workdir, args.monitors, args.idle, fake))
            what = "fake QMP monitors" if fake else "idle QEMU guests"
            figures.append(
                benchlib.Figure(
                    "memory",
                    "qmp.rss_per_monitor",
                    f"bridge RSS per watched QMP monitor ({args.monitors} {what}, glob)",
                    found["per_monitor_kib"],
                    "KiB",
                    note=f"{found['base_rss_kib'] / 1024:.1f} → {found['rss_kib'] / 1024:.1f} MiB",
                    params=found,
                )
            )
    if args.json:
        benchlib.write_json(args.json, "qmp", figures, begun)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
