"""Replaying the traces recorded from real QEMU 7.2 gives what real libvirt 9.0 emits
(qemu-guests.md §7).  ``REBOOT+`` stands for one or more REBOOT events: SeaBIOS adds 1-2
resets of its own after every reset, and their number varies from run to run."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tests.core.scenario import describe
from virtbridge import Engine, Event, EventID, Signal
from virtbridge.wire.trace import parse_line

TRACES = Path(__file__).resolve().parents[2] / "examples" / "traces"

START = ["RESUMED/UNPAUSED [4/0]", "STARTED/BOOTED [2/0]"]
DESTROYED = ["SHUTDOWN/HOST [6/2]", "STOPPED/DESTROYED [5/1]"]
GUEST_OFF = ["SHUTDOWN/GUEST [6/1]", "STOPPED/SHUTDOWN [5/0]"]
PANICKED = "CRASHED/PANICKED [8/0]"

EXPECTED: dict[str, list[str]] = {
    "poweroff": [*START, *GUEST_OFF],
    "acpi-shutdown": [*START, "SHUTDOWN/REQUESTED [6/100]", *GUEST_OFF],
    "shutdown-ignored": [
        *START,
        "SHUTDOWN/REQUESTED [6/100]",
        "SHUTDOWN/IGNORED [6/101]",
        *DESTROYED,
    ],
    "suspend-resume": [*START, "SUSPENDED/PAUSED [3/0]", "RESUMED/UNPAUSED [4/0]", *DESTROYED],
    "reset": [*START, "REBOOT+", *DESTROYED],
    "destroy": [*START, *DESTROYED],
    "destroy-paused": [*START, "SUSPENDED/PAUSED [3/0]", *DESTROYED],
    "kill-sigkill": [*START, "STOPPED/FAILED [5/5]"],
    "kill-sigterm": [*START, "SHUTDOWN/HOST [6/2]", "STOPPED/SHUTDOWN [5/0]"],
    "panic-destroy": [*START, PANICKED, "STOPPED/CRASHED [5/2]"],
    "panic-destroy-nostop": [*START, PANICKED, "STOPPED/CRASHED [5/2]"],
    "panic-coredump-destroy": [*START, PANICKED, "STOPPED/CRASHED [5/2]"],
    "panic-preserve": [*START, PANICKED, *DESTROYED],
    "panic-restart": [
        *START,
        "SUSPENDED/PAUSED [3/0]",
        PANICKED,
        "REBOOT+",
        "RESUMED/UNPAUSED [4/0]",
        "REBOOT+",
        *DESTROYED,
    ],
    "crashloaded": [*START, "CRASHED/CRASHLOADED [8/1]", *DESTROYED],
    "guest-reboot": [*START, "REBOOT+", *DESTROYED],
    "guest-reboot-destroy": [*START, *GUEST_OFF],
    # on_poweroff=restart: only REBOOT, and the later destroy shows no SHUTDOWN/HOST
    "poweroff-restart": [*START, "REBOOT+", "STOPPED/DESTROYED [5/1]"],
    "reboot-request": [*START, "REBOOT+", *DESTROYED],
    "start-paused": [
        "STARTED/BOOTED [2/0]",
        "SUSPENDED/PAUSED [3/0]",
        "RESUMED/UNPAUSED [4/0]",
        *DESTROYED,
    ],
    "save-restore": [
        *START,
        "SUSPENDED/PAUSED [3/0]",
        "STOPPED/SAVED [5/4]",
        "STARTED/RESTORED [2/2]",
        "RESUMED/FROM_SNAPSHOT [4/2]",
        *DESTROYED,
    ],
    "pm-suspend": [
        *START,
        "PMSUSPENDED/MEMORY [7/0]",
        "STARTED/WAKEUP [2/4]",
        "REBOOT+",
        *DESTROYED,
    ],
    "reconnect": [*DESTROYED],
}
"""Lifecycle events and REBOOTs per scenario (monitor, PM and migration events left out)."""

SHOWN = {EventID.LIFECYCLE, EventID.REBOOT}


def signals(path: Path) -> list[Signal]:
    out = []
    for line in path.read_text().splitlines():
        signal = parse_line(line)
        if signal is not None:
            out.append(signal)
    return out


def collapse(events: list[Event]) -> list[str]:
    out: list[str] = []
    for event in events:
        if event.kind not in SHOWN:
            continue
        text = "REBOOT+" if event.kind is EventID.REBOOT else describe(event)
        if text == "REBOOT+" and out and out[-1] == "REBOOT+":
            continue
        out.append(text)
    return out


def replay(path: Path, strict: bool = False) -> dict[str, list[Event]]:
    engine = Engine(strict_libvirt=strict)
    by_domain: dict[str, list[Event]] = defaultdict(list)
    for signal in signals(path):
        outcome = engine.feed(signal)
        assert outcome.error is None, (signal, outcome.error)
        for event in outcome.events:
            by_domain[event.domain.name].append(event)
    return by_domain


def test_every_recorded_scenario_has_an_expectation() -> None:
    recorded = {path.stem for path in TRACES.glob("*.jsonl")} - {"mixed"}
    assert recorded == set(EXPECTED)


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_recorded_trace(scenario: str) -> None:
    (events,) = replay(TRACES / f"{scenario}.jsonl").values()
    assert collapse(events) == EXPECTED[scenario]


@pytest.mark.parametrize("scenario", ["acpi-shutdown", "shutdown-ignored"])
def test_recorded_trace_strict(scenario: str) -> None:
    (events,) = replay(TRACES / f"{scenario}.jsonl", strict=True).values()
    expected = [item for item in EXPECTED[scenario] if "[6/10" not in item]
    assert collapse(events) == expected
    assert not any(event.is_extension for event in events)


def test_mixed_trace_attributes_events_to_the_right_domains() -> None:
    by_domain = replay(TRACES / "mixed.jsonl")
    assert len(by_domain) == 8
    for domain, events in by_domain.items():
        scenario = domain.removeprefix("mix-")
        assert collapse(events) == EXPECTED[scenario], domain
        assert {event.cause.domain for event in events} == {domain}


def test_pm_suspend_trace_emits_pm_events() -> None:
    (events,) = replay(TRACES / "pm-suspend.jsonl").values()
    kinds = [event.kind for event in events]
    assert kinds.index(EventID.PMSUSPEND) < kinds.index(EventID.PMWAKEUP)


def test_domain_ids_in_recorded_traces() -> None:
    (events,) = replay(TRACES / "save-restore.jsonl").values()
    lifecycle = [(describe(e), e.domain.id) for e in events if e.kind is EventID.LIFECYCLE]
    assert lifecycle[0][1] == lifecycle[1][1] == 1
    assert ("STOPPED/SAVED [5/4]", -1) in lifecycle
    assert ("STARTED/RESTORED [2/2]", 2) in lifecycle
    assert lifecycle[-1] == ("STOPPED/DESTROYED [5/1]", -1)
