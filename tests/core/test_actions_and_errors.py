"""What the engine asks the process owner to do, domain IDs, and refused intents."""

from __future__ import annotations

import pytest

from tests.core.scenario import GUEST_POWEROFF, HOST_SIGNAL, Run
from virtbridge import (
    CoreDump,
    Engine,
    Kill,
    MonitorCommand,
    Resync,
    SaveState,
    ScheduleTimer,
    Timestamp,
)

START = ["start", "RESUME"]
PANIC = 'GUEST_PANICKED {"action": "pause"}'


def actions(run: Run, step: str) -> list[str]:
    run.feed([step])
    out = []
    for action in run.outcomes[-1].actions:
        if isinstance(action, MonitorCommand):
            out.append(action.command)
        else:
            out.append(type(action).__name__)
    return out


@pytest.mark.parametrize(
    ("given", "step", "expected"),
    [
        ([], "start", ["cont"]),
        (START, GUEST_POWEROFF, ["Kill"]),
        (['start {"on_poweroff": "restart"}', "RESUME"], GUEST_POWEROFF, ["system_reset", "cont"]),
        ([*START, "reboot"], GUEST_POWEROFF, ["system_reset", "cont"]),
        (START, "reboot", ["system_powerdown"]),
        (
            ['start {"on_reboot": "destroy"}', "RESUME"],
            "reboot",
            ["system_powerdown", "ScheduleTimer"],
        ),
        (START, "shutdown", ["system_powerdown", "ScheduleTimer"]),
        (['start {"shutdown_timeout": 0}', "RESUME"], "shutdown", ["system_powerdown"]),
        (START, "suspend", ["stop"]),
        ([*START, "suspend", "STOP"], "resume", ["cont"]),
        (START, "reset", ["system_reset"]),
        (START, "destroy", ["Kill"]),
        ([*START, "destroy"], HOST_SIGNAL, []),
        (START, "save", ["stop", "SaveState"]),
        (START, PANIC, ["Kill"]),
        (['start {"on_crash": "coredump-destroy"}', "RESUME"], PANIC, ["CoreDump", "Kill"]),
        (['start {"on_crash": "restart"}', "RESUME"], PANIC, ["system_reset", "cont"]),
        (
            ['start {"on_crash": "coredump-restart"}', "RESUME"],
            PANIC,
            ["CoreDump", "system_reset", "cont"],
        ),
        (['start {"on_crash": "preserve"}', "RESUME"], PANIC, []),
        ([*START, "SUSPEND"], "pm-wakeup", ["system_wakeup"]),
        ([], "RESUME", ["Resync"]),
        # libvirt finishes an interrupted shutdown when it reconnects
        (
            [*START, GUEST_POWEROFF],
            'status {"status": {"status": "shutdown", "running": false}}',
            ["Kill"],
        ),
    ],
)
def test_actions(given: list[str], step: str, expected: list[str]) -> None:
    run = Run()
    run.feed(given)
    assert actions(run, step) == expected


def test_kill_escalates_after_libvirts_grace() -> None:
    run = Run()
    run.feed([*START, "destroy"])
    (kill,) = run.outcomes[-1].actions
    assert isinstance(kill, Kill) and kill.grace == 10.0 and kill.domain == "vm"


def test_timer_deadline_comes_from_the_signal_time() -> None:
    run = Run()
    run.feed(['start {"shutdown_timeout": 30}', "RESUME", "shutdown"])
    timer = run.outcomes[-1].actions[-1]
    assert isinstance(timer, ScheduleTimer)
    assert timer.delay == 30
    assert timer.at == Timestamp(run.clock[0] + 30)


def test_early_timer_is_ignored() -> None:
    run = Run()
    run.feed(['start {"shutdown_timeout": 30}', "RESUME", "shutdown"])
    assert run.described(["timer"]) == []  # one second later: too early
    run.clock[0] += 60
    assert run.described(["timer"]) == ["SHUTDOWN/IGNORED [6/101]"]
    assert run.described(["timer"]) == []  # the request is over


def test_domain_ids_follow_libvirt() -> None:
    run = Run()
    events = run.feed(["define"])
    assert events[0].domain.id == -1
    events = run.feed(START)
    assert {event.domain.id for event in events} == {1}
    events = run.feed([GUEST_POWEROFF, "STOP", HOST_SIGNAL, "eof"])
    assert [event.domain.id for event in events] == [1, 1]  # STOPPED from EOF keeps the ID
    events = run.feed([*START, "destroy", HOST_SIGNAL, "eof"])
    assert [event.domain.id for event in events] == [2, 2, 2, -1]  # destroy's STOPPED: -1
    events = run.feed([*START, PANIC])
    assert [event.domain.id for event in events] == [3, 3, 3, -1]
    assert [event.domain.id for event in run.feed(["undefine"])] == [-1]


def test_each_event_carries_its_cause_and_time() -> None:
    run = Run()
    (resumed, started) = run.feed(START)[-2:]
    assert resumed.cause is started.cause
    assert resumed.cause.event == "RESUME"  # type: ignore[attr-defined]
    assert resumed.timestamp == Timestamp(run.clock[0])


@pytest.mark.parametrize(
    ("given", "step", "message"),
    [
        ([], "destroy", "Domain not found"),
        (["define"], "destroy", "domain is not running"),
        (["define"], "suspend", "domain is not running"),
        (START, "start", "domain is already running"),
        (START, "resume", "domain is already running"),
        ([*START, "SUSPEND"], "suspend", "domain is pmsuspended"),
        ([*START, "SUSPEND"], "resume", "domain is pmsuspended"),
        ([*START, "suspend", "STOP"], "shutdown", "domain is not running"),
        (START, "undefine", "cannot undefine transient domain"),
        (START, "managed-save", "cannot do managed save for transient domain"),
        (START, "restore", "domain is already active"),
        (['define {"uuid": "a"}'], 'define {"uuid": "b"}', "already exists with uuid a"),
        ([], 'define {"on_poweroff": "preserve"}', "doesn't support the 'preserve' action"),
        ([], 'start {"on_reboot": "rename-restart"}', "doesn't support the 'rename-restart'"),
        ([], 'define {"on_poweroff": "restart", "on_reboot": "destroy"}', "cannot be combined"),
        ([], 'define {"on_reboot": "coredump-destroy"}', "only valid for on_crash"),
    ],
)
def test_refused_intents_change_nothing(given: list[str], step: str, message: str) -> None:
    run = Run()
    run.feed(given)
    before = run.state
    events = run.feed([step])
    outcome = run.outcomes[-1]
    assert outcome.error is not None and message in outcome.error
    assert events == [] and outcome.actions == ()
    assert run.state == before


def test_invalid_default_policy_is_refused() -> None:
    from virtbridge import LifecycleAction, Policy

    with pytest.raises(ValueError, match="preserve"):
        Engine(policy=Policy(on_poweroff=LifecycleAction.PRESERVE))
    engine = Engine()
    with pytest.raises(ValueError, match="cannot be combined"):
        engine.set_policy(
            "vm", Policy(on_poweroff=LifecycleAction.RESTART, on_reboot=LifecycleAction.DESTROY)
        )


def test_feeding_something_else_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        Engine().feed("SHUTDOWN")  # type: ignore[arg-type]


def test_action_types_are_exported() -> None:
    for kind in (CoreDump, Kill, MonitorCommand, Resync, SaveState, ScheduleTimer):
        assert kind.__module__.startswith("virtbridge.")


def test_a_restored_shutdown_request_times_out_and_escalates() -> None:
    """A shutdown request stored with its deadline and restored into a new engine: the
    deadline's timer gives SHUTDOWN/IGNORED and, with on_shutdown_timeout = "destroy", the
    kill (the runtime half, arming the timer after a restart, is tested end to end)."""
    from tests.core.scenario import signal
    from virtbridge import Engine, Kill, Timer
    from virtbridge.engine.lifecycle import EventType, ShutdownDetail

    before = Engine()
    clock = [1_000_000]
    for step in (
        'define {"shutdown_timeout": 1, "on_shutdown_timeout": "destroy"}',
        "start",
        "RESUME",
        "shutdown",
        "POWERDOWN",
    ):
        before.feed(signal(step, clock=clock))
    after = Engine()
    after.restore(before.snapshot())
    (armed,) = after.pending_timers()
    assert armed.domain == "vm" and armed.at is not None
    outcome = after.feed(Timer(domain="vm", timestamp=armed.at))
    lifecycle = [
        (e.payload.event, e.payload.detail) for e in outcome.events if e.kind.kind == "lifecycle"
    ]
    assert (EventType.SHUTDOWN, ShutdownDetail.IGNORED) in lifecycle  # type: ignore[union-attr]
    assert any(isinstance(action, Kill) for action in outcome.actions), outcome.actions
