"""A QEMU process the supervisor started: signalled through a pidfd, never by a bare PID.

The process is started in its own session (so a Ctrl-C at the bridge's terminal does not reach
it) and is not tied to the bridge's event loop, so it outlives a bridge restart the way
libvirt's guests outlive libvirtd.  A later bridge re-finds it through a pid file that also
records the process's start time, so a recycled PID is never mistaken for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


@dataclass
class Exit:
    """How the process ended: ``status`` (exit code) or ``signal_number``; both None when it
    was not our child (re-found after a bridge restart) and the kernel kept the status."""

    status: int | None = None
    signal_number: int | None = None


class Emulator:
    """One QEMU process: signal it, wait for it."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None, pidfile: Path) -> None:
        self.pid = pid
        self.popen = popen
        self.pidfile = pidfile
        self.pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self.pidfd = os.pidfd_open(pid)
        self.exit: Exit | None = None
        self._exited = asyncio.Event()

    @classmethod
    def launch(
        cls, argv: list[str], log: Path, pidfile: Path, pass_fds: tuple[int, ...] = ()
    ) -> Emulator:
        """Start ``argv``; ``pass_fds`` are inherited at the same numbers (all others closed)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as output:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                pass_fds=pass_fds,
            )
        emulator = cls(popen.pid, popen, pidfile)
        pidfile.write_text(f"{popen.pid} {start_time(popen.pid) or 0}\n")
        return emulator

    @classmethod
    def adopt(cls, pidfile: Path) -> Emulator | None:
        """Re-find a process a previous bridge started, if it is still that process."""
        try:
            pid_text, started_text = pidfile.read_text().split()
            pid, started = int(pid_text), int(started_text)
        except (OSError, ValueError):
            return None
        emulator = cls(pid, None, pidfile)
        # Checked after the pidfd is open: if the start time still matches, the pidfd is that
        # process, and every later signal reaches it or nobody, never a recycled PID.
        if start_time(pid) != started:
            emulator.release()
            return None  # gone, or the PID now belongs to someone else
        return emulator

    def release(self) -> None:
        """Close the pidfd without waiting for the process (it is not ours after all)."""
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    @property
    def alive(self) -> bool:
        return self.exit is None

    def send(self, signum: int) -> bool:
        """Signal the process; False if it is already gone."""
        if self.exit is not None:
            return False
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signum)
            elif self.popen is not None and self.popen.poll() is None:
                self.popen.send_signal(signum)  # our unreaped child: its PID cannot be reused
            else:
                return False
        except ProcessLookupError:
            return False
        return True

    async def wait(self) -> Exit:
        """Wait for the process to end (the pidfd becomes readable) and reap it."""
        if self.exit is None:
            await self._wait_gone()
            self.exit = self._reap()
            self._exited.set()
            if self.pidfd is not None:
                os.close(self.pidfd)
                self.pidfd = None
            with contextlib.suppress(FileNotFoundError):
                self.pidfile.unlink()
        return self.exit

    async def wait_for(self, timeout: float) -> bool:
        """True if the process ended within ``timeout`` seconds."""
        if self.exit is not None:
            return True
        try:
            await asyncio.wait_for(self._exited.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _wait_gone(self) -> None:
        loop = asyncio.get_running_loop()
        if self.pidfd is not None:
            gone: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not gone.done():
                    gone.set_result(None)

            loop.add_reader(self.pidfd, readable)
            try:
                await gone
            finally:
                loop.remove_reader(self.pidfd)
            return
        while start_time(self.pid) is not None and not (
            self.popen and self.popen.poll() is not None
        ):
            await asyncio.sleep(0.05)

    def _reap(self) -> Exit:
        if self.popen is None:
            return Exit()
        code = self.popen.wait()
        return Exit(signal_number=-code) if code < 0 else Exit(status=code)
