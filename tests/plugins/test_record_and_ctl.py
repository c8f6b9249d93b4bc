"""``virtbridge ctl`` and ``status`` (the CLI, as a user runs it) against a bridge that
supervises a real guest, and ``virtbridge record`` of a live guest replayed with
``virtbridge replay``: the replayed events equal what a bridge attached to the same guest saw.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import stat
import sys
import time
from pathlib import Path

from tests.plugins.qemu_harness import (
    BOOTED,
    DESTROYED,
    WAIT,
    BridgeRun,
    describe,
    run,
    squash,
    until,
)
from tests.plugins.qemu_processes import Fleet, supervised

Images = dict[str, Path]

NOT_RUNNING = "Requested operation is not valid: domain is not running"


async def cli(*args: str, timeout: float = WAIT) -> tuple[int, str, str]:
    """Run ``virtbridge ARGS`` in a subprocess (without blocking the bridge in this loop):
    exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "virtbridge",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# -- ctl and status ----------------------------------------------------------------------------


def test_ctl_and_status_through_the_cli(qemu: Images, tmp_path: Path) -> None:
    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "idle")]) as r:
            await r.wait_for("vm", BOOTED[-1])
            assert stat.S_IMODE(r.control.stat().st_mode) == 0o600
            config = tmp_path / "bridge.toml"
            config.write_text(f'[bridge]\nstate_dir = "{r.state_dir}"\n')
            by_config, by_socket = ("-c", str(config)), ("--socket", str(r.control))

            # Refused as libvirt refuses it: its message, exit status 1, nothing changed.
            assert await cli("ctl", "vm", "resume", *by_config) == (
                1,
                "",
                "virtbridge: resume vm: Requested operation is not valid: "
                "domain is already running\n",
            )
            assert await cli("ctl", "vm", "suspend", *by_socket) == (
                0,
                "vm(1) LIFECYCLE SUSPENDED/PAUSED -> PAUSED/USER\nvm: PAUSED/USER\n",
                "",
            )
            # Suspending a paused domain is a silent no-op in libvirt, answered at once.
            started = time.monotonic()
            assert await cli("ctl", "vm", "suspend", *by_socket) == (0, "vm: PAUSED/USER\n", "")
            assert time.monotonic() - started < 2
            assert await cli("ctl", "vm", "resume", *by_config) == (
                0,
                "vm(1) LIFECYCLE RESUMED/UNPAUSED -> RUNNING/UNPAUSED\nvm: RUNNING/UNPAUSED\n",
                "",
            )
            assert await cli("ctl", "nosuch", "destroy", *by_config) == (
                1,
                "",
                "virtbridge: destroy nosuch: "
                "Domain not found: no domain with matching name 'nosuch'\n",
            )
            assert await cli("ctl", "nosuch", "start", *by_config) == (
                1,
                "",
                "virtbridge: start nosuch: no source here can start domain 'nosuch'\n",
            )

            code, out, _ = await cli("status", "--json", "--domains", *by_config)
            assert code == 0
            status = json.loads(out)
            assert status["domains"] == 1 and status["sources"]["vm"]["state"] == "running"
            assert status["sinks"]["jsonl"]["delivered"] >= 4
            (view,) = status["domain_states"]
            assert (view["name"], view["id"], view["state"], view["reason"]) == ("vm", 1, 1, 5)
            code, out, _ = await cli("status", "--domains", *by_socket)
            assert code == 0 and "  domain vm(1): RUNNING/UNPAUSED\n" in out

            assert await cli("ctl", "vm", "destroy", *by_socket) == (
                0,
                "vm(1) LIFECYCLE SHUTDOWN/HOST -> SHUTDOWN/UNKNOWN\n"
                "vm(-1) LIFECYCLE STOPPED/DESTROYED -> SHUTOFF/DESTROYED\n"
                "vm: not running\n",
                "",
            )
            assert await cli("ctl", "vm", "destroy", *by_socket) == (
                1,
                "",
                f"virtbridge: destroy vm: {NOT_RUNNING}\n",
            )
            await r.settle()
            assert r.lines() == [
                *BOOTED,
                "SUSPENDED/PAUSED [3/0] -> PAUSED/USER [3/1]",
                "RESUMED/UNPAUSED [4/0] -> RUNNING/UNPAUSED [1/5]",
                *DESTROYED,
            ]

    run(main())


def test_ctl_without_a_running_bridge_exits_3(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(stale))  # a socket file left behind: nobody listens
    config = tmp_path / "bridge.toml"
    config.write_text(f'[bridge]\nstate_dir = "{tmp_path / "state"}"\n')

    async def main() -> None:
        for target in (("--socket", str(tmp_path / "none.sock")), ("--socket", str(stale))):
            code, out, err = await cli("ctl", "vm", "start", *target)
            assert (code, out) == (3, "")
            assert err.startswith("virtbridge: cannot reach a bridge at ")
            assert err.endswith(": is it running?\n")
        code, _, err = await cli("status", "-c", str(config))
        assert code == 3 and str(tmp_path / "state" / "control.sock") in err

    run(main())


# -- record, then replay -------------------------------------------------------------------------


async def replay(trace: Path) -> list[str]:
    code, out, err = await cli("replay", str(trace), "--format", "json")
    assert code == 0, err
    return [describe(json.loads(line)["data"]) for line in out.splitlines()]


def test_record_then_replay_matches_the_live_bridge(
    qemu: Images, tmp_path: Path, sockdir: Path
) -> None:
    """A guest watched at once by a bridge (on ``vm.qmp``) and by ``virtbridge record`` (on a
    third monitor) while a management tool (``vm.mon``) stops, resumes and resets it, and
    then SIGTERMs it: the replayed recording gives the very events the bridge gave."""
    trace = tmp_path / "trace.jsonl"
    recorder_socket = sockdir / "vm.rec"

    async def main() -> None:
        async with Fleet(qemu, sockdir) as fleet:
            vm = await fleet.spawn(
                "idle", "vm", "-qmp", f"unix:{recorder_socket},server=on,wait=off"
            )
            await vm.wait_for_boot("idle")
            source = {"type": "qmp", "path": str(sockdir / "vm.qmp"), "domain": "vm"}
            async with BridgeRun(tmp_path, sources=[source]) as r:
                recorder = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "virtbridge", "record", "--qmp", str(recorder_socket),
                    "-o", str(trace), "--domain", "vm",
                    stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                try:
                    await until(lambda: trace.exists() and '"status"' in trace.read_text())
                    await until(lambda: r.sources["qmp"].source.sessions != {})
                    monitor = await fleet.monitor("vm")
                    await monitor.execute("stop")
                    await monitor.execute("cont")
                    await monitor.execute("system_reset")
                    await vm.wait_for_boot("idle", count=2)
                    await asyncio.sleep(0.3)  # SeaBIOS' own resets
                    vm.send_signal(signal.SIGTERM)
                    # The recorder stops by itself at the monitor's EOF.
                    _, err = await asyncio.wait_for(recorder.communicate(), WAIT)
                finally:
                    if recorder.returncode is None:
                        recorder.kill()
                        await recorder.wait()
                assert recorder.returncode == 0, err
                await r.wait_for("vm", "STOPPED/SHUTDOWN [5/0] -> SHUTOFF/SHUTDOWN [5/1]")
                await r.settle()
                live = r.lines()

        lines = trace.read_text().splitlines()
        assert lines[0].startswith(f"# recorded by virtbridge record from {recorder_socket} (")
        assert lines[1].startswith("# QEMU 7.")
        assert json.loads(lines[2])["status"] == {"status": "running", "running": True}
        assert err.decode().startswith("virtbridge: recorded ")
        replayed = await replay(trace)
        assert replayed == live  # event for event, REBOOTs included
        assert squash(replayed) == [
            "SUSPENDED/PAUSED [3/0] -> PAUSED/UNKNOWN [3/0]",
            "RESUMED/UNPAUSED [4/0] -> RUNNING/UNPAUSED [1/5]",
            "REBOOT+ -> RUNNING/UNPAUSED [1/5]",
            "SHUTDOWN/HOST [6/2] -> SHUTDOWN/UNKNOWN [4/0]",
            "STOPPED/SHUTDOWN [5/0] -> SHUTOFF/SHUTDOWN [5/1]",
        ]

    run(main())


def test_record_a_guest_that_powers_off_until_interrupted(
    qemu: Images, tmp_path: Path, sockdir: Path
) -> None:
    """Recording starts while QEMU waits in prelaunch (``-S``); the guest is started, powers
    off and stays (``-no-shutdown``); Ctrl-C ends the recording."""
    trace = tmp_path / "poweroff.jsonl"

    async def main() -> None:
        async with Fleet(qemu, sockdir) as fleet:
            await fleet.spawn("poweroff", "vm", "-S")
            await until((sockdir / "vm.qmp").exists)
            recorder = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "virtbridge", "record", "--qmp", str(sockdir / "vm.qmp"),
                "-o", str(trace),
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                await until(lambda: trace.exists() and '"status"' in trace.read_text())
                await (await fleet.monitor("vm")).execute("cont")
                await until(
                    lambda: trace.read_text().count('"event"') >= 3
                )  # RESUME, SHUTDOWN, STOP
                recorder.send_signal(signal.SIGINT)
                _, err = await asyncio.wait_for(recorder.communicate(), WAIT)
            finally:
                if recorder.returncode is None:
                    recorder.kill()
                    await recorder.wait()
            assert recorder.returncode == 0, err
            assert err.decode() == f"virtbridge: recorded 3 events from 'vm' to {trace}\n"
            assert fleet["vm"].process.returncode is None  # recording never touches the guest

        records = [json.loads(line) for line in trace.read_text().splitlines()[2:]]
        assert [(rec.get("status"), rec.get("event")) for rec in records] == [
            ({"status": "prelaunch", "running": False}, None),
            (None, "RESUME"),
            (None, "SHUTDOWN"),
            (None, "STOP"),
        ]
        assert records[2]["data"] == {"guest": True, "reason": "guest-shutdown"}
        replayed = await replay(trace)
        # Found in prelaunch, not as a new process: cont is a resume, as at libvirt's reconnect.
        assert replayed == [
            "RESUMED/UNPAUSED [4/0] -> RUNNING/UNPAUSED [1/5]",
            "SHUTDOWN/GUEST [6/1] -> SHUTDOWN/UNKNOWN [4/0]",
        ]
        assert not any("SUSPENDED" in line for line in replayed)

    run(main())
