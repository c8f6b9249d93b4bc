"""§2.5, a failed reconnect: a process found gone on looking again.  libvirt stops the domain
without an event; virtbridge announces it as the extension STOPPED/VANISHED, never as the
libvirt event STOPPED/FAILED, and says nothing under strict_libvirt."""

from __future__ import annotations

from tests.core.scenario import Run
from virtbridge import Engine


def test_announced_as_an_extension() -> None:
    run = Run()
    run.feed(["define", "start", "RESUME"])
    events = run.feed(["lost"])
    assert [str(e.describe()) for e in events] == [
        "vm(1) LIFECYCLE STOPPED/VANISHED -> SHUTOFF/CRASHED"
    ]
    assert events[0].is_extension
    assert run.state == "SHUTOFF/CRASHED [5/3]"


def test_strict_libvirt_stops_it_silently() -> None:
    run = Run(Engine(strict_libvirt=True))
    run.feed(["define", "start", "RESUME"])
    assert run.feed(["lost"]) == []
    assert run.state == "SHUTOFF/CRASHED [5/3]"


def test_nothing_to_stop() -> None:
    run = Run()
    assert run.feed(["lost"]) == []
    run.feed(["define"])
    assert run.feed(["lost"]) == []
    run.feed(["start", "RESUME", "eof"])
    assert run.feed(["lost"]) == []  # stopped already
