"""The ``qemu`` source's save: the paused guest's state written to an image by a migration.

QEMU writes to a file descriptor the bridge opened and handed over with ``getfd`` (an ``fd:``
migration; QEMU 7.2 has no ``file:`` URI), so no path ever goes through a shell and a state
directory may hold any character.  The image is written under a temporary name and renamed
only once ``query-migrate`` says the migration completed and the data is on disk: a failed,
cancelled or timed-out save never leaves a truncated image under the name of a good one.  A
migration that failed or ran past its time is cancelled (``migrate_cancel``); the caller then
tells the engine, which resumes the domain as libvirt does after a failed save.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

from ._errors import QmpError
from ._monitor import MonitorSession

FD_NAME = "virtbridge-save"
"""The name the image's descriptor gets in QEMU (``getfd``), used by the ``fd:`` URI."""

ENDED = frozenset({"completed", "failed", "cancelled"})
"""``query-migrate`` statuses after which QEMU no longer touches the image."""

POLL = 0.05
CANCEL_WAIT = 10.0
"""Seconds to wait for a cancelled migration to stop writing."""


class SaveError(Exception):
    """The image was not written; the message says why."""


async def save_image(session: MonitorSession, image: Path, timeout: float) -> None:
    """Migrate the domain into ``image``; raise SaveError unless the migration completed."""
    partial = image.with_name(image.name + ".part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(partial, flags, 0o600)
    except OSError as exc:
        raise SaveError(f"cannot create {partial}: {exc.strerror}") from None
    saved = False
    try:
        status = await _migrate(session, fd, timeout)
        if status != "completed":
            await _cancel(session)
            raise SaveError(f"migration to {partial} {status}")
        await asyncio.to_thread(os.fsync, fd)
        os.replace(partial, image)
        saved = True
    except OSError as exc:
        raise SaveError(f"cannot finish {image}: {exc}") from None
    finally:
        os.close(fd)
        if not saved:
            with contextlib.suppress(OSError):
                partial.unlink()


async def _migrate(session: MonitorSession, fd: int, timeout: float) -> str:
    """Start the migration into ``fd`` and wait for its end: its final status, or a reason
    it did not end well (``timed out after ...``, ``failed: <QEMU's reason>``)."""
    try:
        await session.execute("getfd", {"fdname": FD_NAME}, fd=fd)
        try:
            await session.execute("migrate", {"uri": f"fd:{FD_NAME}"})
        except QmpError:
            with contextlib.suppress(QmpError):  # not consumed by a migration: drop it
                await session.execute("closefd", {"fdname": FD_NAME})
            raise
        deadline = time.monotonic() + timeout
        while True:
            reply = await session.execute("query-migrate")
            state = reply if isinstance(reply, dict) else {}
            status = state.get("status")
            if status == "failed":
                return f"failed: {state.get('error-desc', 'no reason given')}"
            if status in ENDED:
                return str(status)
            if time.monotonic() >= deadline:
                return f"timed out after {timeout:g} s (status {status!r})"
            await asyncio.sleep(POLL)
    except QmpError as exc:
        return f"failed: {exc}"


async def _cancel(session: MonitorSession) -> None:
    """Cancel the migration, if any, and wait (bounded) until QEMU stops writing."""
    with contextlib.suppress(QmpError):
        await session.execute("migrate_cancel")
        deadline = time.monotonic() + CANCEL_WAIT
        while time.monotonic() < deadline:
            reply = await session.execute("query-migrate")
            status = reply.get("status") if isinstance(reply, dict) else None
            if status is None or status in ENDED or status == "none":
                return
            await asyncio.sleep(POLL)
