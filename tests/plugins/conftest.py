"""Fixtures for the tests that run real QEMU guests under the QMP sources."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.qemu_processes import kill_stray_qemu
from tests.support.guests import write_images
from tests.support.qemu import require_qemu


@pytest.fixture(scope="session")
def guest_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every boot-sector guest as ``<variant>.img``, written once per test session."""
    return write_images(tmp_path_factory.mktemp("guests"))


@pytest.fixture
def qemu(guest_images: dict[str, Path]) -> Iterator[dict[str, Path]]:
    """For a test that runs real QEMU: requires the binary (fails under CI, skips elsewhere),
    gives the guest images, and SIGKILLs and reaps every QEMU the test left behind."""
    require_qemu()
    try:
        yield guest_images
    finally:
        kill_stray_qemu()


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for unix sockets (their paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vb-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
