"""Where the ``qemu`` source's QMP sockets live: a private directory under the state directory.

Whoever answers on a supervised domain's monitor socket is believed about the domain's life
(a SHUTDOWN there gets QEMU killed), so the socket must never be where another user can create
or replace it: not ``/tmp``, and not in a directory anyone else may write or enter.  Sockets
are ``STATE_DIR/q/<hash>.qmp``; the directory is created 0700 and checked, never trusted, each
time a socket is named: it must be a real directory (not a symlink) of this user with no access
for group or others.

``sun_path`` holds 108 bytes.  When the real path is longer, the socket is named through an
open descriptor of the checked directory (``/proc/self/fd/N/<hash>.qmp``), which QEMU inherits
at the same number: the same short name then works for QEMU's bind and for our connect.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

SUN_PATH_MAX = 107
"""Bytes of a socket path that fit in ``sockaddr_un.sun_path`` (108, with the NUL)."""


class UnsafeSocketDirectory(OSError):
    """The socket directory exists but others could reach into it, or it is not ours."""


@dataclass(frozen=True)
class SocketAddress:
    """A monitor socket: ``path`` is what QEMU binds and the client connects to (short enough
    for ``sun_path``), ``real`` where it is on disk, ``pass_fds`` what QEMU must inherit for
    ``path`` to resolve."""

    path: str
    real: Path
    pass_fds: tuple[int, ...] = ()

    def qemu_option(self) -> str:
        """The ``-qmp`` argument (QEMU's option syntax doubles a comma inside a value)."""
        return f"unix:{self.path.replace(',', ',,')},server=on,wait=off"


class SocketDirectory:
    """``STATE_DIR/q``, opened and checked; close it when the source is done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # An existing one is checked below like a new one: whoever made it, it must be ours.
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self.fd = os.open(path, flags)
        except OSError as exc:
            raise UnsafeSocketDirectory(
                f"{path}: cannot open it as a directory of its own ({exc.strerror}); refusing "
                "to use it for QMP sockets"
            ) from None
        try:
            self.check()
        except OSError:
            os.close(self.fd)
            raise

    def check(self) -> None:
        """Raise UnsafeSocketDirectory unless the directory is this user's and private."""
        info = os.fstat(self.fd)
        problem = _problem(info)
        if problem is not None:
            raise UnsafeSocketDirectory(
                f"{self.path}: {problem}; refusing to use it for QMP sockets "
                f"(expected a directory owned by uid {os.geteuid()} with mode 0700)"
            )

    def address(self, domain: str) -> SocketAddress:
        """The socket of ``domain``, after checking the directory again."""
        self.check()
        name = hashlib.sha256(domain.encode()).hexdigest()[:16] + ".qmp"
        real = self.path / name
        if len(os.fsencode(real)) <= SUN_PATH_MAX:
            return SocketAddress(str(real), real)
        return SocketAddress(f"/proc/self/fd/{self.fd}/{name}", real, (self.fd,))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _problem(info: os.stat_result) -> str | None:
    if not stat.S_ISDIR(info.st_mode):
        return "not a directory"
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}"
    if info.st_mode & 0o077:
        return f"mode {stat.S_IMODE(info.st_mode):04o} lets group or others in"
    return None
