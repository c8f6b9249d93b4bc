"""The libvirt Python binding, and the one event loop libvirt may have per process.

Two bindings are supported: the ``libvirt-python`` package (built against the host's libvirt) and
Debian's ``python3-libvirt`` (seen from a venv made with ``--system-site-packages``).  Both
provide the same ``libvirt`` module; which one is found does not matter here.

libvirt delivers events only while an event implementation is registered *and running*, and
it must be registered before the first connection is opened (KubeVirt lost events when it was
not).  The implementation is process-wide: libvirt ignores a second registration, and its
default loop must not be run by two threads.  So :func:`event_loop` registers the default
implementation once and runs it in one daemon thread for the life of the process; every
source shares it.  Callbacks run in that thread and must never call back into libvirt
(the event state is locked while they run): they hand their arguments over and return.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any, Final

MISSING: Final = (
    "the libvirt source needs the libvirt Python binding, and it cannot be imported ({why}): "
    "pip install 'virtbridge[libvirt]' (the libvirt-python package; building it needs libvirt-dev, "
    "pkg-config and a C compiler), or apt-get install python3-libvirt and use a venv made "
    "with --system-site-packages"
)


class BindingMissing(RuntimeError):
    """The ``libvirt`` module cannot be imported; the message names both ways to get it."""


def load() -> ModuleType:
    """The ``libvirt`` module; :class:`BindingMissing` if neither binding is installed (or
    the one found cannot load libvirt's shared library)."""
    try:
        return importlib.import_module("libvirt")
    except ImportError as exc:
        raise BindingMissing(MISSING.format(why=exc)) from None


def available() -> str | None:
    """None if the binding can be imported, else why not (with both ways to install it)."""
    try:
        load()
    except BindingMissing as exc:
        return str(exc)
    return None


class EventLoop:
    """libvirt's default event implementation, registered once, run by one daemon thread."""

    _lock = threading.Lock()
    _thread: threading.Thread | None = None

    @classmethod
    def ensure(cls, libvirt: Any) -> None:
        """Register the default implementation (and silence libvirt's habit of printing every
        error to stderr: errors reach us as exceptions) and start its thread, once."""
        with cls._lock:
            if cls._thread is not None and cls._thread.is_alive():
                return
            libvirt.registerErrorHandler(_ignore_error, None)
            if libvirt.virEventRegisterDefaultImpl() < 0:
                raise RuntimeError("libvirt refused to register its default event loop")
            thread = threading.Thread(
                target=_run_forever, args=(libvirt,), name="libvirt-events", daemon=True
            )
            thread.start()
            cls._thread = thread


def event_loop(libvirt: Any) -> None:
    """Make sure libvirt's event loop is registered and running (call before connecting)."""
    EventLoop.ensure(libvirt)


def _run_forever(libvirt: Any) -> None:
    while True:
        if libvirt.virEventRunDefaultImpl() < 0:
            # Only a broken poll() gets here; keep serving rather than losing every event.
            threading.Event().wait(0.1)


def _ignore_error(_context: object, _error: object) -> None:
    """libvirt's default handler prints every error; they are raised as exceptions anyway."""
