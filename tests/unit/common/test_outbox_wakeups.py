"""The relay's loop resumes one loop turn after a wake-up (counted turns and tasks, no clocks)."""

from __future__ import annotations

import asyncio

from services.common.outbox.wakeup import Wakeup


async def test_a_wake_up_resumes_the_waiter_at_the_next_loop_turn() -> None:
    wakeup = Wakeup()
    waiting = asyncio.create_task(wakeup.wait(3600))
    await asyncio.sleep(0)  # the waiter is parked now
    wakeup.set()
    await asyncio.sleep(0)  # one turn: `asyncio.wait_for(event.wait())` needs three
    assert waiting.done()
    assert waiting.result() is True


async def test_a_raised_flag_returns_at_once_and_a_cleared_one_waits_out_its_time() -> None:
    wakeup = Wakeup()
    wakeup.set()
    assert await wakeup.wait(3600) is True
    wakeup.clear()
    assert not wakeup.is_set()
    assert await wakeup.wait(0.001) is False


async def test_a_wait_makes_no_task() -> None:
    wakeup = Wakeup()
    before = len(asyncio.all_tasks())
    waiting = asyncio.ensure_future(wakeup.wait(3600))
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before + 1  # the waiting task; wait_for makes one more
    wakeup.set()
    assert await waiting is True
