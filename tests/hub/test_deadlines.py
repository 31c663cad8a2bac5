"""Fixed-length deadlines for many tasks on one timer (hub.deadlines)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import pytest

from hub.deadlines import Deadlines


def _run(coroutine: Awaitable[None]) -> None:
    async def main() -> None:
        await asyncio.wait_for(coroutine, 10)

    asyncio.run(main())


async def _bounded(deadlines: Deadlines, work: Awaitable[object]) -> str:
    """``work`` under a deadline, the way the edge uses one."""
    deadline = deadlines.arm()
    try:
        await work
    except asyncio.CancelledError:
        if not deadlines.expired(deadline):
            raise
        return "timed out"
    finally:
        deadlines.disarm(deadline)
    return "done"


def test_work_past_its_deadline_is_cancelled_and_told_so() -> None:
    async def body() -> None:
        deadlines = Deadlines(asyncio.get_running_loop(), 0.05)
        outcome = await _bounded(deadlines, asyncio.sleep(5))
        assert outcome == "timed out"
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0  # the expiry's cancellation was withdrawn
        await asyncio.sleep(0)  # and the task carries on

    _run(body())


def test_work_done_in_time_is_left_alone_after_its_deadline() -> None:
    async def body() -> None:
        deadlines = Deadlines(asyncio.get_running_loop(), 0.05)
        assert await _bounded(deadlines, asyncio.sleep(0.01)) == "done"
        await asyncio.sleep(0.1)  # past the deadline: nothing is cancelled
        assert len(deadlines) == 0

    _run(body())


def test_a_cancellation_from_elsewhere_goes_through() -> None:
    async def body() -> None:
        deadlines = Deadlines(asyncio.get_running_loop(), 5)
        task = asyncio.create_task(_bounded(deadlines, asyncio.sleep(5)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    _run(body())


def test_a_cancellation_from_elsewhere_at_the_expiry_goes_through() -> None:
    seen: list[bool] = []

    async def bounded(deadlines: Deadlines) -> None:
        task = asyncio.current_task()
        assert task is not None
        deadline = deadlines.arm()
        # Cancelled from elsewhere just after the expiry, before the task runs again.
        asyncio.get_running_loop().call_at(deadline.at + 1e-6, task.cancel)
        time.sleep(0.05)  # the loop held past both
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append(deadlines.expired(deadline))
            raise
        finally:
            deadlines.disarm(deadline)

    async def body() -> None:
        task = asyncio.create_task(bounded(Deadlines(asyncio.get_running_loop(), 0.01)))
        with pytest.raises(asyncio.CancelledError):
            await task

    _run(body())
    assert seen == [False]


def test_many_tasks_expire_each_on_its_own_deadline_in_the_order_armed() -> None:
    async def body() -> None:
        deadlines = Deadlines(asyncio.get_running_loop(), 0.05)
        finished: list[tuple[int, str]] = []

        async def one(number: int, seconds: float) -> None:
            finished.append((number, await _bounded(deadlines, asyncio.sleep(seconds))))

        tasks = []
        for number in range(20):
            # Every other one finishes in time: the timer is set for the first, which is
            # disarmed, and still serves the ones armed after it.
            tasks.append(asyncio.create_task(one(number, 0.0 if number % 2 == 0 else 5)))
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        assert sorted(finished) == [(n, "done" if n % 2 == 0 else "timed out") for n in range(20)]
        late = [n for n, outcome in finished if outcome == "timed out"]
        assert late == sorted(late)
        assert len(deadlines) == 0

    _run(body())


def test_deadlines_disarmed_in_order_do_not_pile_up() -> None:
    async def body() -> None:
        deadlines = Deadlines(asyncio.get_running_loop(), 30)
        for _ in range(10_000):
            assert await _bounded(deadlines, asyncio.sleep(0)) == "done"
        assert len(deadlines) <= 1

    _run(body())


def test_a_deadline_needs_a_positive_length_and_a_task() -> None:
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(ValueError, match="positive"):
            Deadlines(loop, 0)
        with pytest.raises(RuntimeError, match="armed from a task"):
            Deadlines(loop, 1).arm()
    finally:
        loop.close()
