#!/usr/bin/env python3
"""Record real QEMU traces for the engine: ``examples/traces/<scenario>.jsonl``.

Each scenario boots a tiny test guest (``tests/support/guests.py``) under a libvirt-like
supervisor (``trace_supervisor.py``) and writes every input signal it observed: intents, QMP
events, the monitor's EOF, the process exit. ``mixed.jsonl`` runs several scenarios at the same
time under distinct domain names and merges them by timestamp. The format is described in
``examples/traces/README.md``.

Usage: ``python tools/record_traces.py [--out DIR] [SCENARIO ...]`` (needs qemu-system-x86_64).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_ROOT: Final = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(_ROOT), str(_ROOT / "plugins")]  # a script run from a plain checkout

from tests.support.guests import write_images  # noqa: E402
from tests.support.qemu import find_qemu  # noqa: E402
from trace_supervisor import Domain, Json, Recording  # noqa: E402


@dataclass(frozen=True)
class Scenario:
    variant: str
    description: str
    run: Callable[[Domain], Awaitable[None]]
    # For a scenario with a race in it: which outcome this file shows. The recorder runs the
    # scenario again (up to ATTEMPTS times) until a recording passes.
    accept: Callable[[Recording], bool] | None = None


ATTEMPTS: Final = 20


def _has_event(name: str) -> Callable[[Recording], bool]:
    return lambda recording: any(line.get("event") == name for line in recording.lines)


def _lacks_event(name: str) -> Callable[[Recording], bool]:
    return lambda recording: not _has_event(name)(recording)


async def _poweroff(d: Domain) -> None:
    await d.start()
    await d.wait_gone()


async def _acpi_shutdown(d: Domain) -> None:
    await d.start()
    await d.wait_boot()
    await d.shutdown()
    await d.wait_gone()


async def _shutdown_ignored(d: Domain) -> None:
    await d.start(policy={"shutdown_timeout": 0.5})
    await d.wait_boot()
    await d.shutdown()
    await asyncio.sleep(0.6)
    d.signal("timer")
    await d.destroy()


async def _suspend_resume(d: Domain) -> None:
    await d.start()
    await d.wait_boot()
    await d.suspend()
    await d.resume()
    await d.destroy()


async def _reset(d: Domain) -> None:
    await d.start()
    await d.wait_boot()
    await d.reset()
    await d.destroy()


async def _destroy(d: Domain) -> None:
    await d.start()
    await d.wait_boot()
    await d.destroy()


async def _destroy_paused(d: Domain) -> None:
    await d.start()
    await d.wait_boot()
    await d.suspend()
    await d.destroy()


def _external_kill(signum: int) -> Callable[[Domain], Awaitable[None]]:
    async def run(d: Domain) -> None:
        await d.start()
        await d.wait_boot()
        d.kill(signum)  # no intent: someone else did it
        await d.wait_gone()

    return run


def _crash_then_gone(on_crash: str) -> Callable[[Domain], Awaitable[None]]:
    async def run(d: Domain) -> None:
        await d.start(policy={"on_crash": on_crash})
        await d.wait_gone(timeout=30.0)  # a core dump takes a moment

    return run


async def _panic_preserve(d: Domain) -> None:
    await d.start(policy={"on_crash": "preserve"})
    await d.wait_event("GUEST_PANICKED")
    await d.wait_event("STOP")
    await d.destroy()


async def _restarted_then_destroyed(d: Domain, policy: Json) -> None:
    await d.start(policy=policy)
    await d.wait_boot(2)
    await d.destroy()


async def _panic_restart(d: Domain) -> None:
    await _restarted_then_destroyed(d, {"on_crash": "restart"})


async def _crashloaded(d: Domain) -> None:
    await d.start()
    await d.wait_event("GUEST_CRASHLOADED")
    await d.destroy()


async def _guest_reboot(d: Domain) -> None:
    await _restarted_then_destroyed(d, {"on_reboot": "restart"})


async def _guest_reboot_destroy(d: Domain) -> None:
    # libvirt itself keeps -no-reboot off and turns the guest's reset into a shutdown through
    # QMP; -no-reboot gives the same QMP events without that machinery.
    await d.start(policy={"on_reboot": "destroy"}, extra=("-no-reboot",))
    await d.wait_gone()


async def _poweroff_restart(d: Domain) -> None:
    await _restarted_then_destroyed(d, {"on_poweroff": "restart"})


async def _reboot_request(d: Domain) -> None:
    await d.start()
    await d.wait_boot()
    await d.reboot()
    await d.destroy()


async def _start_paused(d: Domain) -> None:
    await d.start(paused=True)
    await asyncio.sleep(0.1)
    await d.resume()
    await d.wait_boot()
    await d.destroy()


async def _save_restore(d: Domain) -> None:
    image = d.workdir / f"{d.name}.save"
    await d.start()
    await d.wait_boot()
    await d.save(image)
    await d.restore(image)
    await asyncio.sleep(0.1)
    await d.destroy()
    image.unlink(missing_ok=True)


async def _pm_suspend(d: Domain) -> None:
    await d.start()
    await d.wait_event("SUSPEND")
    await d.pm_wakeup()
    await d.destroy()


async def _reconnect(d: Domain) -> None:
    d.recording.muted = True  # a previous supervisor started it; we were not watching
    await d.start()
    await d.wait_boot()
    await d.disconnect()
    d.recording.muted = False
    await d.connect()
    d.signal("status", status=await d.command("query-status"))
    await d.destroy()


SCENARIOS: Final[dict[str, Scenario]] = {
    # name: (guest variant, what happens, how)
    "poweroff": Scenario(
        "poweroff",
        "start; the guest powers off by itself",
        _poweroff,
    ),
    "acpi-shutdown": Scenario(
        "acpi",
        "start; shutdown intent, the guest complies",
        _acpi_shutdown,
    ),
    "shutdown-ignored": Scenario(
        "idle",
        "start (shutdown_timeout 0.5); shutdown intent ignored; timer after 0.6 s; destroy",
        _shutdown_ignored,
    ),
    "suspend-resume": Scenario(
        "idle",
        "start; suspend; resume; destroy",
        _suspend_resume,
    ),
    "reset": Scenario(
        "idle",
        "start; reset intent; destroy",
        _reset,
    ),
    "destroy": Scenario(
        "idle",
        "start; destroy of the running domain",
        _destroy,
    ),
    "destroy-paused": Scenario(
        "idle",
        "start; suspend; destroy of the paused domain",
        _destroy_paused,
    ),
    "kill-sigkill": Scenario(
        "idle",
        "start; QEMU killed from outside with SIGKILL",
        _external_kill(signal.SIGKILL),
    ),
    "kill-sigterm": Scenario(
        "idle",
        "start; QEMU killed from outside with SIGTERM",
        _external_kill(signal.SIGTERM),
    ),
    "panic-destroy": Scenario(
        "panic",
        "start (on_crash=destroy); the guest panics (the usual order: STOP before SIGTERM)",
        _crash_then_gone("destroy"),
        accept=_has_event("STOP"),
    ),
    "panic-destroy-nostop": Scenario(
        "panic",
        "as panic-destroy, but the supervisor's SIGTERM beat QEMU's pending STOP (a real race)",
        _crash_then_gone("destroy"),
        accept=_lacks_event("STOP"),
    ),
    "panic-coredump-destroy": Scenario(
        "panic",
        "start (on_crash=coredump-destroy); the guest panics; memory dumped, then SIGTERM",
        _crash_then_gone("coredump-destroy"),
    ),
    "panic-preserve": Scenario(
        "panic",
        "start (on_crash=preserve); the guest panics; destroy",
        _panic_preserve,
    ),
    "panic-restart": Scenario(
        "panic-once",
        "start (on_crash=restart); panic; reset + cont; second boot; destroy",
        _panic_restart,
    ),
    "crashloaded": Scenario(
        "crashloaded",
        "start; pvpanic crash-loaded, keeps running; destroy",
        _crashloaded,
    ),
    "guest-reboot": Scenario(
        "reboot",
        "start (on_reboot=restart); the guest reboots itself; destroy",
        _guest_reboot,
    ),
    "guest-reboot-destroy": Scenario(
        "reboot",
        "start (on_reboot=destroy, -no-reboot); the guest reboots, so it stops",
        _guest_reboot_destroy,
    ),
    "poweroff-restart": Scenario(
        "poweroff-once",
        "start (on_poweroff=restart); guest powers off; fake reboot; destroy",
        _poweroff_restart,
    ),
    "reboot-request": Scenario(
        "acpi",
        "start; reboot intent (ACPI, then fake reboot: reset + cont); destroy",
        _reboot_request,
    ),
    "start-paused": Scenario(
        "idle",
        "start-paused; resume; destroy",
        _start_paused,
    ),
    "save-restore": Scenario(
        "idle",
        "start; save (stop, migrate to file, quit); restore (new QEMU); destroy",
        _save_restore,
    ),
    "pm-suspend": Scenario(
        "suspend",
        "start; the guest suspends to RAM (S3); pm-wakeup; destroy",
        _pm_suspend,
    ),
    "reconnect": Scenario(
        "idle",
        "a supervisor reconnects to a running QEMU: status; destroy",
        _reconnect,
    ),
}

MIXED: Final = (
    "poweroff",
    "acpi-shutdown",
    "reboot-request",
    "panic-restart",
    "suspend-resume",
    "kill-sigkill",
    "pm-suspend",
    "save-restore",
)


async def record(name: str, domain: str, images: dict[str, Path], workdir: Path) -> Recording:
    scenario = SCENARIOS[name]
    for _ in range(ATTEMPTS if scenario.accept else 1):
        recording = Recording(name, scenario.description)
        d = Domain(domain, scenario.variant, images[scenario.variant], workdir, recording)
        try:
            await scenario.run(d)
        finally:
            await d.close()
        if scenario.accept is None or scenario.accept(recording):
            return recording
    raise RuntimeError(f"the wanted outcome did not happen in {ATTEMPTS} runs")


def _timestamp_key(line: Json) -> tuple[int, int]:
    stamp = line["timestamp"]
    return (stamp["seconds"], stamp["microseconds"])


def render(
    recordings: Sequence[Recording], title: str, description: str, qemu_version: str, workdir: Path
) -> str:
    """The trace file: header comments, then the lines; several recordings are merged by time
    (each domain keeps its own order)."""
    header = [f"# scenario {title}: {description}", f"# {qemu_version}"]
    for recording in recordings:
        for argv in recording.commands:
            header.append("# command: " + shlex.join(argv).replace(str(workdir), "$WORK"))
    lines = heapq.merge(*(r.lines for r in recordings), key=_timestamp_key)
    return "\n".join([*header, *(json.dumps(line) for line in lines)]) + "\n"


def summary(recording: Recording) -> str:
    names: list[str] = []
    for line in recording.lines:
        name = line.get("event") or f"<{line.get('intent') or line['signal']}>"
        if name == "RESET" and line.get("data", {}).get("guest"):
            name = "RESET(guest)"
        names.append(name)
    return " ".join(names)


async def run(names: Sequence[str], out: Path, qemu: str) -> int:
    version = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True).stdout
    version = version.splitlines()[0]
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="vbrec-") as tmp:
        workdir = Path(tmp)
        images = write_images(workdir / "img")
        for name in names:
            try:
                if name == "mixed":
                    recordings = await asyncio.gather(
                        *(record(s, f"mix-{s}", images, workdir) for s in MIXED)
                    )
                    description = "these scenarios at the same time: " + ", ".join(MIXED)
                else:
                    recordings = [await record(name, f"vm-{name}", images, workdir)]
                    description = SCENARIOS[name].description
            except Exception as exc:  # report it and go on with the next scenario
                failures += 1
                print(f"FAILED {name}: {exc!r}", file=sys.stderr)
                continue
            text = render(recordings, name, description, version, workdir)
            (out / f"{name}.jsonl").write_text(text)
            for recording in recordings:
                print(f"{name:24} {summary(recording)}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    choices = [*SCENARIOS, "mixed"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"default: all of {', '.join(choices)}"
    )
    parser.add_argument(
        "--out", type=Path, default=_ROOT / "examples" / "traces", help="output directory"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in choices]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(choices)}")
    qemu = find_qemu()
    if qemu is None:
        print("qemu-system-x86_64 is missing (apt-get install qemu-system-x86)", file=sys.stderr)
        return 2
    return asyncio.run(run(args.scenarios or choices, args.out, qemu))


if __name__ == "__main__":
    sys.exit(main())
