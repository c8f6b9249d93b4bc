"""Run tiny real QEMU guests (see ``guests``) for tests and for the trace recorder.

Everything waits with a bound: a guest that never boots or a socket that never appears is an
error after a few seconds, never a hung test run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from virtbridge_qmp import QmpClient, QmpConnectionError

from .guests import boot_marker

__all__ = [
    "QEMU_BINARY",
    "QemuProcess",
    "connect_qmp",
    "find_qemu",
    "qemu_command",
    "require_qemu",
    "serial_count",
    "spawn_qemu",
    "wait_for_serial",
    "wait_for_serial_async",
]

QEMU_BINARY: Final = "qemu-system-x86_64"
_POLL: Final = 0.01


def find_qemu() -> str | None:
    """The QEMU binary's path, or None when it is not installed."""
    return shutil.which(QEMU_BINARY)


def require_qemu() -> str:
    """The QEMU binary for a test: fails the test under CI (``CI=true``), skips it elsewhere."""
    import pytest  # only tests call this; the recorder must not need pytest

    found = find_qemu()
    if found is not None:
        return found
    reason = f"{QEMU_BINARY} is not installed (Debian: apt-get install qemu-system-x86)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def qemu_command(
    image: str | os.PathLike[str],
    qmp_path: str | os.PathLike[str],
    serial_path: str | os.PathLike[str],
    extra: Iterable[str] = (),
    *,
    qemu: str = QEMU_BINARY,
) -> list[str]:
    """The command line that boots ``image`` the way the measured facts were taken.

    TCG only (KVM is far slower to start here), a throw-away overlay so the image is never
    written, COM1 into ``serial_path``, the ISA pvpanic device, ``-no-shutdown`` (the libvirt
    setting: a powered-off guest stops and waits instead of exiting) and QMP on a unix socket.
    """
    return [
        qemu,
        "-nodefaults",
        "-display", "none",
        "-machine", "pc,accel=tcg",
        "-m", "32",
        "-drive", f"file={os.fspath(image)},format=raw,if=ide,snapshot=on",
        "-serial", f"file:{os.fspath(serial_path)}",
        "-device", "pvpanic",
        "-no-shutdown",
        "-qmp", f"unix:{os.fspath(qmp_path)},server=on,wait=off",
        *extra,
    ]  # fmt: skip


def serial_count(serial_path: str | os.PathLike[str], marker: str) -> int:
    """How often ``marker`` occurs in the serial log so far (0 if the file does not exist yet)."""
    try:
        return Path(serial_path).read_text(errors="replace").count(marker)
    except FileNotFoundError:
        return 0


def _serial_timeout(
    serial_path: str | os.PathLike[str], marker: str, count: int, timeout: float
) -> TimeoutError:
    try:
        seen = Path(serial_path).read_text(errors="replace")
    except FileNotFoundError:
        seen = "<no file>"
    return TimeoutError(
        f"{marker!r} x{count} not in {os.fspath(serial_path)} after {timeout} s; it holds {seen!r}"
    )


def wait_for_serial(
    serial_path: str | os.PathLike[str], marker: str, *, count: int = 1, timeout: float = 5.0
) -> None:
    """Block until ``marker`` has appeared ``count`` times; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while serial_count(serial_path, marker) < count:
        if time.monotonic() > deadline:
            raise _serial_timeout(serial_path, marker, count, timeout)
        time.sleep(_POLL)


async def wait_for_serial_async(
    serial_path: str | os.PathLike[str], marker: str, *, count: int = 1, timeout: float = 5.0
) -> None:
    """:func:`wait_for_serial` for coroutines."""
    deadline = time.monotonic() + timeout
    while serial_count(serial_path, marker) < count:
        if time.monotonic() > deadline:
            raise _serial_timeout(serial_path, marker, count, timeout)
        await asyncio.sleep(_POLL)


async def connect_qmp(
    qmp_path: str | os.PathLike[str], *, timeout: float = 5.0, **options: Any
) -> QmpClient:
    """Connect to a QMP socket that QEMU may still be creating, retrying until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        client = QmpClient(qmp_path, **options)
        try:
            await client.connect()
            return client
        except QmpConnectionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(_POLL)


@dataclass
class QemuProcess:
    """A QEMU started by :func:`spawn_qemu`."""

    process: asyncio.subprocess.Process
    argv: list[str]
    qmp_path: Path
    serial_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_for_boot(self, variant: str, *, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until the guest has printed its boot marker ``count`` times."""
        marker = boot_marker(variant)
        await wait_for_serial_async(self.serial_path, marker, count=count, timeout=timeout)

    def boots(self, variant: str) -> int:
        return serial_count(self.serial_path, boot_marker(variant))

    async def wait(self, timeout: float = 5.0) -> int:
        """Wait for the process to exit; its return code (negative: killed by that signal)."""
        return await asyncio.wait_for(self.process.wait(), timeout)

    def send_signal(self, signum: int) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    async def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL if still running, then reap."""
        self.send_signal(signal.SIGKILL)
        await self.wait(timeout)


async def spawn_qemu(
    image: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    extra: Sequence[str] = (),
    *,
    tag: str = "vm",
    qemu: str = QEMU_BINARY,
) -> QemuProcess:
    """Start QEMU on ``image`` with :func:`qemu_command`; files go to ``workdir/<tag>.*``.

    Unix socket paths are limited to about 107 bytes, so keep ``workdir`` short.
    """
    root = Path(workdir)
    qmp_path, serial_path, stderr_path = (root / f"{tag}.{kind}" for kind in ("qmp", "log", "err"))
    for stale in (qmp_path, serial_path):
        stale.unlink(missing_ok=True)
    argv = qemu_command(image, qmp_path, serial_path, extra, qemu=qemu)
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    return QemuProcess(process, argv, qmp_path, serial_path, stderr_path)
