"""A hand-over's "written" (outbox/written.py): resolved a counted number of loop turns
after the publish call first suspends, bounded for the waiter, per committing task.
Turns counted with `sleep(0)`, no clocks; the real broker's order is in the
integration test."""

from __future__ import annotations

import asyncio

import pytest

from services.common.outbox.written import (
    SENDER_TURNS,
    WrittenSignals,
    announcing,
    handed_written,
    release_after,
)


async def _turns_until(task: asyncio.Task[bool], limit: int = 20) -> int:
    turns = 0
    while not task.done() and turns < limit:
        await asyncio.sleep(0)
        turns += 1
    return turns


async def test_announcing_calls_back_at_the_first_suspension_and_passes_everything_through() -> (
    None
):
    seen: list[str] = []
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def publishing() -> int:
        seen.append("handed")  # before any suspension: not announced yet
        value = await gate  # the wait for the acknowledgements
        seen.append("acknowledged")
        return value * 2

    task = asyncio.ensure_future(announcing(publishing(), lambda: seen.append("announced")))
    await asyncio.sleep(0)
    assert seen == ["handed", "announced"]
    gate.set_result(21)
    assert await task == 42
    assert seen == ["handed", "announced", "acknowledged"]  # announced once


async def test_announcing_a_call_that_never_suspends_still_announces() -> None:
    async def immediate() -> str:
        return "done"

    announced: list[bool] = []
    assert await announcing(immediate(), lambda: announced.append(True)) == "done"
    assert announced == [True]


async def test_announcing_carries_errors_and_cancellation_into_the_call() -> None:
    cleaned: list[str] = []
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def failing() -> None:
        try:
            await gate
        finally:
            cleaned.append("finally")

    task = asyncio.ensure_future(announcing(failing(), lambda: None))
    await asyncio.sleep(0)
    gate.set_exception(RuntimeError("broker gone"))
    with pytest.raises(RuntimeError, match="broker gone"):
        await task
    gate2: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def waiting() -> None:
        try:
            await gate2
        finally:
            cleaned.append("cancelled")

    task2 = asyncio.ensure_future(announcing(waiting(), lambda: None))
    await asyncio.sleep(0)
    task2.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task2
    assert cleaned == ["finally", "cancelled"]


async def test_release_after_resolves_its_waiters_that_many_turns_later() -> None:
    for turns in (0, 1, SENDER_TURNS):
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        release_after([waiter], turns=turns)
        counted = 0
        while not waiter.done():
            await asyncio.sleep(0)
            counted += 1
        assert counted == turns  # a hop a turn; no turn at all for 0
        assert waiter.result() is True


async def test_a_committing_task_resumes_sender_turns_after_its_round_first_suspends() -> None:
    signals = WrittenSignals()
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def committing() -> bool:
        signals.add()  # what the relay's `_take` does inside the commit
        return await handed_written(within_s=3600)

    submitter = asyncio.create_task(committing())
    await asyncio.sleep(0)  # committed, now waiting
    signals.take()

    async def publishing() -> None:
        await gate

    round_ = asyncio.ensure_future(signals.announced(publishing()))
    turns = await _turns_until(submitter)
    # Resolved SENDER_TURNS turns after the suspension (the producer's sender writes in
    # them), resumed in the next: never before, and long before the acknowledgement.
    assert turns == SENDER_TURNS + 2
    assert submitter.result() is True
    assert not round_.done()
    gate.set_result(None)
    await round_


async def test_the_wait_gives_up_at_its_bound_and_says_so() -> None:
    signals = WrittenSignals()

    async def committing() -> bool:
        signals.add()
        return await handed_written(within_s=0.001)

    assert await asyncio.wait_for(committing(), timeout=60) is False


async def test_no_hand_over_no_wait_and_a_round_with_nothing_to_send_releases_at_once() -> None:
    assert await handed_written(within_s=3600) is True  # nothing handed over by this task
    signals = WrittenSignals()

    async def committing() -> bool:
        signals.add()
        return await handed_written(within_s=3600)

    submitter = asyncio.create_task(committing())
    await asyncio.sleep(0)
    signals.take()
    signals.release()  # its rows all went to a claim
    assert await _turns_until(submitter) == 1  # the waiter's own resumption
    assert submitter.result() is True


async def test_each_task_awaits_only_its_own_hand_over() -> None:
    signals = WrittenSignals()
    order: list[str] = []

    async def committing(name: str) -> None:
        signals.add()
        await handed_written(within_s=3600)
        order.append(name)

    first = asyncio.create_task(committing("first"))
    await asyncio.sleep(0)
    signals.take()
    second = asyncio.create_task(committing("second"))  # after the round took its signals
    await asyncio.sleep(0)
    signals.release()
    await first
    assert order == ["first"]
    assert not second.done()
    signals.take()
    signals.release()
    await second
    assert order == ["first", "second"]
