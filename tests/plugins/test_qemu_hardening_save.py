"""The ``qemu`` source's save on real QEMU: the image is written through a descriptor handed to
QEMU (``getfd`` + an ``fd:`` migration), never through a shell, so any state directory works;
STOPPED/SAVED only follows a migration that completed; a save that fails or runs past
``save_timeout`` is cancelled and the domain resumed as libvirt does (RESUMED/UNPAUSED, reason
SAVE_CANCELED), after which it behaves like any running domain.

Before: the save ran ``exec:cat > {path}`` (a state directory with a space or ``;`` broke it,
and could run commands), a failed migration left the engine "saving" for good (the domain
stuck paused, a later guest SHUTDOWN swallowed), and after its time-out the save sent ``quit``
with the migration still running.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.plugins.qemu_harness import BOOTED, GUEST_SHUTDOWN, BridgeRun, run
from tests.plugins.qemu_processes import boots, guest_command, serial, supervised
from virtbridge import Intent, IntentKind, Timestamp

Images = dict[str, Path]

SAVE_PAUSED = "SUSPENDED/PAUSED [3/0] -> PAUSED/SAVE [3/3]"
SAVE_CANCELED = "RESUMED/UNPAUSED [4/0] -> RUNNING/SAVE_CANCELED [1/7]"
SAVED = "STOPPED/SAVED [5/4] -> SHUTOFF/SAVED [5/5]"
REQUESTED = "SHUTDOWN/REQUESTED [6/100] -> RUNNING/SHUTDOWN_REQUESTED [1/100]"
POWERDOWN = "QEMU_MONITOR POWERDOWN -> RUNNING/SHUTDOWN_REQUESTED [1/100]"
PASS = "MIGRATION_ITERATION -> PAUSED/SAVE [3/3]"
"""One per pass of the migration (libvirt's MIGRATION_ITERATION); how many varies."""
MIGRATION_MAGIC = b"QEVM"
"""The first bytes of a QEMU migration stream (a save image)."""


def passes_apart(lines: list[str]) -> tuple[list[str], int]:
    """The lines without the migration's passes, and how many passes there were."""
    rest = [line for line in lines if line != PASS]
    return rest, len(lines) - len(rest)


async def save(r: BridgeRun, domain: str = "vm") -> None:
    """Ask for a save, as libvirt's virDomainSave (``ctl`` has no save verb)."""
    assert r.bridge is not None
    stamp = Timestamp.from_float(time.time())
    outcome = await r.bridge.intent(Intent(domain=domain, intent=IntentKind.SAVE, timestamp=stamp))
    assert outcome.error is None, outcome.error


def with_state_dir(r: BridgeRun, state_dir: Path) -> BridgeRun:
    r.data["bridge"]["state_dir"] = str(state_dir)
    r.state_dir = state_dir
    return r


def test_save_into_a_state_dir_with_a_space_and_a_semicolon(qemu: Images, tmp_path: Path) -> None:
    state_dir = tmp_path / "st ate;x"

    async def main() -> None:
        r = with_state_dir(
            BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "idle")]), state_dir
        )
        async with r:
            await r.booted()
            await save(r)
            await r.wait_for("vm", SAVED)
            await r.gone()
            await r.settle()
            lines, passes = passes_apart(r.lines())
            assert lines == [*BOOTED, SAVE_PAUSED, SAVED]
            assert passes >= 1
        domain_dir = state_dir / "qemu" / "vm"
        image = domain_dir / "save.img"
        assert image.read_bytes()[:4] == MIGRATION_MAGIC
        assert image.stat().st_size > 10_000
        assert sorted(p.name for p in domain_dir.iterdir()) == ["qemu.log", "save.img"]
        assert not (tmp_path / "st").exists()  # what a shell would have made of the path

    run(main())


def test_a_save_that_cannot_be_written_resumes_the_domain(qemu: Images, tmp_path: Path) -> None:
    """The image's place is taken by a directory (the save cannot be written, even as root):
    the domain runs on, SAVE_CANCELED, and a guest shutdown afterwards is an ordinary one."""

    async def main() -> None:
        r = BridgeRun(tmp_path, sources=[supervised(qemu, tmp_path, "acpi")])
        blocker = r.state_dir / "qemu" / "vm" / "save.img"
        blocker.mkdir(parents=True)
        async with r:
            await r.booted()
            await boots(tmp_path, "acpi", 1)
            await save(r)
            await r.wait_for("vm", SAVE_CANCELED)
            assert await r.state("vm") == ("RUNNING", "SAVE_CANCELED", 1)
            assert r.running()
            answer = await r.ctl("vm", "shutdown")
            assert answer["ok"], answer
            await r.wait_for("vm", GUEST_SHUTDOWN[-1])
            await r.gone()
            await r.settle()
            lines, passes = passes_apart(r.lines())
            assert passes >= 1  # it ran to the end; only then could the image not be named
            assert lines == [
                *BOOTED,
                SAVE_PAUSED,
                SAVE_CANCELED,
                REQUESTED,
                POWERDOWN,
                *GUEST_SHUTDOWN,
            ]
        assert blocker.is_dir() and not any(blocker.iterdir())
        assert sorted(p.name for p in blocker.parent.iterdir()) == ["qemu.log", "save.img"]

    run(main())


def test_a_save_past_its_time_out_is_cancelled_not_reported_saved(
    qemu: Images, tmp_path: Path
) -> None:
    """A migration throttled to 1 kB/s cannot finish within save_timeout: it is cancelled, no
    image is left, and QEMU is not told to quit: the domain runs on."""
    throttled = guest_command(
        qemu["idle"], serial(tmp_path), "-global", "migration.x-max-bandwidth=1000"
    )
    source: dict[str, Any] = {
        "type": "qemu",
        "name": "vm",
        "command": throttled,
        "save_timeout": 1,
    }

    async def main() -> None:
        async with BridgeRun(tmp_path, sources=[source]) as r:
            await r.booted()
            asked = time.monotonic()
            await save(r)
            await r.wait_for("vm", SAVE_CANCELED)
            assert time.monotonic() - asked >= 0.9
            await r.settle()
            lines, passes = passes_apart(r.lines())
            assert lines == [*BOOTED, SAVE_PAUSED, SAVE_CANCELED]
            assert passes == 1  # it never got past its first pass
            assert await r.state("vm") == ("RUNNING", "SAVE_CANCELED", 1)
            assert r.running()
            domain_dir = r.state_dir / "qemu" / "vm"
            assert sorted(p.name for p in domain_dir.iterdir()) == ["qemu.log", "qemu.pid"]

    run(main())
