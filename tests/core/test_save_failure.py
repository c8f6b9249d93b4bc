"""A save that fails (libvirt-lifecycle.md §2.7, virDomainSave: "On failure: resume with
SAVE_CANCELED (RESUMED/UNPAUSED)"): the process owner reports ``save-failed``, the save job
ends, and a domain the save paused runs again.  Before, the engine stayed "saving" for good: a
later guest SHUTDOWN was swallowed (no SHUTDOWN/GUEST, no kill) and the STOP after it showed as
SUSPENDED/PAUSED."""

from __future__ import annotations

import pytest

from tests.core.scenario import GUEST_POWEROFF, HOST_SIGNAL, Run
from virtbridge import Engine, Kill, MonitorCommand

DEFINED_START = ["define", "start", "RESUME"]
SAVE_PAUSED = "SUSPENDED/PAUSED [3/0]"
SAVE_CANCELED = "RESUMED/UNPAUSED [4/0]"


def commands(run: Run) -> list[str]:
    """The last outcome's actions, monitor commands by name."""
    return [
        action.command if isinstance(action, MonitorCommand) else type(action).__name__
        for action in run.outcomes[-1].actions
    ]


@pytest.mark.parametrize("strict", [False, True])
def test_a_failed_save_of_a_running_domain_resumes_it(strict: bool) -> None:
    run = Run(Engine(strict_libvirt=strict))
    run.feed(DEFINED_START)
    assert run.described(["save", "STOP"]) == [SAVE_PAUSED]
    assert run.state == "PAUSED/SAVE [3/3]"
    assert run.described(["save-failed"]) == []
    assert commands(run) == ["cont"]
    assert run.outcomes[-1].error is None
    assert run.described(["RESUME"]) == [SAVE_CANCELED]
    assert run.state == "RUNNING/SAVE_CANCELED [1/7]"


def test_the_failure_may_come_before_the_saves_own_stop() -> None:
    """The owner can report before the STOP of the save's ``stop`` reached the engine."""
    run = Run()
    run.feed(DEFINED_START)
    run.feed(["save", "save-failed"])
    assert commands(run) == ["cont"]
    assert run.described(["STOP", "RESUME"]) == [SAVE_PAUSED, SAVE_CANCELED]
    assert run.state == "RUNNING/SAVE_CANCELED [1/7]"


def test_a_failed_save_of_a_paused_domain_leaves_it_paused() -> None:
    run = Run()
    run.feed([*DEFINED_START, "suspend", "STOP"])
    assert run.described(["save", "save-failed"]) == []
    assert commands(run) == []
    assert run.state == "PAUSED/USER [3/1]"


def test_after_a_failed_save_a_guest_shutdown_is_a_shutdown_again() -> None:
    run = Run()
    run.feed([*DEFINED_START, "save", "STOP", "save-failed", "RESUME"])
    assert run.described([GUEST_POWEROFF]) == ["SHUTDOWN/GUEST [6/1]"]
    assert [type(action) for action in run.outcomes[-1].actions] == [Kill]
    assert run.described(["STOP"]) == []  # never the bogus SUSPENDED/PAUSED
    assert run.described(["eof"]) == ["STOPPED/SHUTDOWN [5/0]"]
    assert run.state == "SHUTOFF/SHUTDOWN [5/1]"


def test_after_a_failed_save_a_pause_has_its_own_reason() -> None:
    run = Run()
    run.feed([*DEFINED_START, "save", "STOP", "save-failed", "RESUME"])
    assert run.described(["suspend", "STOP"]) == [SAVE_PAUSED]
    assert run.state == "PAUSED/USER [3/1]"


def test_a_failed_managed_save_leaves_no_managed_image_behind() -> None:
    """The next start boots afresh: nothing was saved to restore from."""
    run = Run()
    run.feed([*DEFINED_START, "managed-save", "STOP", "save-failed", "RESUME"])
    run.feed(["destroy", HOST_SIGNAL, "eof"])
    assert run.described(["start", "RESUME"]) == ["RESUMED/UNPAUSED [4/0]", "STARTED/BOOTED [2/0]"]
    assert run.state == "RUNNING/BOOTED [1/1]"


def test_a_successful_save_still_stops_the_domain_saved() -> None:
    run = Run()
    run.feed(DEFINED_START)
    steps = ["save", "STOP", 'SHUTDOWN {"guest": false, "reason": "host-qmp-quit"}', "eof"]
    assert run.described(steps) == [SAVE_PAUSED, "STOPPED/SAVED [5/4]"]
    assert run.state == "SHUTOFF/SAVED [5/5]"


@pytest.mark.parametrize(
    ("given", "error"),
    [
        (DEFINED_START, "Requested operation is not valid: no job is active on the domain"),
        (
            [*DEFINED_START, "save", "STOP", "save-failed"],
            "Requested operation is not valid: no job is active on the domain",
        ),
        (["define"], "Requested operation is not valid: domain is not running"),
        ([], "Domain not found: no domain with matching name 'vm'"),
    ],
)
def test_a_failure_with_no_save_in_progress_is_refused(given: list[str], error: str) -> None:
    run = Run()
    run.feed(given)
    before = run.state
    assert run.described(["save-failed"]) == []
    assert run.outcomes[-1].error == error
    assert run.outcomes[-1].actions == ()
    assert run.state == before
