"""States go out one flush at a time: a lone one at once, a burst's together, at the pace the
broker answers (``virtbridge.OneAtATime``)."""

from __future__ import annotations

import asyncio

import virtbridge


def test_a_lone_request_runs_at_the_end_of_the_turn() -> None:
    async def scenario() -> list[str]:
        order: list[str] = []
        pacer = virtbridge.OneAtATime(lambda: order.append("run"))
        pacer.request()
        pacer.request()  # the same turn: one run
        order.append("turn goes on")
        await asyncio.sleep(0)
        order.append("next turn")
        return order

    assert asyncio.run(scenario()) == ["turn goes on", "run", "next turn"]


def test_requests_during_a_run_wait_for_its_answer_then_run_once() -> None:
    async def scenario() -> tuple[int, int, int, int]:
        loop = asyncio.get_running_loop()
        answers: list[asyncio.Future[None]] = []

        def run() -> asyncio.Future[None]:
            answers.append(loop.create_future())
            return answers[-1]

        pacer = virtbridge.OneAtATime(run)
        pacer.request()
        await asyncio.sleep(0)
        first = len(answers)  # one run, its answer outstanding
        for _ in range(50):  # a burst while it is on its way
            pacer.request()
            await asyncio.sleep(0)
        during = len(answers)
        answers[0].set_result(None)  # the broker answers the first
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        after = len(answers)
        answers[1].set_exception(ConnectionError("gone"))  # a failed one frees the way too
        answers[1].exception()
        pacer.request()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return first, during, after, len(answers)

    assert asyncio.run(scenario()) == (1, 1, 2, 3)


def test_run_now_runs_what_was_requested_at_once() -> None:
    async def scenario() -> tuple[int, int]:
        runs: list[int] = []
        pacer = virtbridge.OneAtATime(lambda: runs.append(1))
        pacer.run_now()  # nothing requested: nothing to run
        nothing = len(runs)
        pacer.request()
        pacer.run_now()
        await asyncio.sleep(0)  # and not again at the end of the turn
        return nothing, len(runs)

    assert asyncio.run(scenario()) == (0, 1)
