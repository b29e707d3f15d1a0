"""`wait_any`: one future per wait, woken by the first signal set, or by its timeout."""

from __future__ import annotations

import asyncio

from services.common.delivery.signals import Signal, wait_any


async def test_the_first_signal_set_ends_the_wait() -> None:
    woken, heard = Signal(), Signal()
    waiting = asyncio.create_task(wait_any([woken, heard], timeout=60))
    await asyncio.sleep(0)
    before = len(asyncio.all_tasks())
    heard.set()
    assert await waiting is heard
    assert len(asyncio.all_tasks()) == before - 1  # no task of its own was left behind
    assert not woken._sleepers
    assert not heard._sleepers


async def test_a_signal_set_already_ends_the_wait_after_one_turn() -> None:
    woken, heard = Signal(), Signal()
    woken.set()
    heard.set()
    assert await wait_any([woken, heard], timeout=60) is woken  # the first in order
    assert woken.is_set()  # waiting clears nothing: the caller does


async def test_the_timeout_ends_the_wait_with_none() -> None:
    woken = Signal()
    assert await wait_any([woken], timeout=0.01) is None
    assert not woken._sleepers
    assert await wait_any([woken], timeout=0) is None


async def test_a_cancelled_wait_leaves_nothing_registered() -> None:
    woken = Signal()
    waiting = asyncio.create_task(wait_any([woken], timeout=60))
    await asyncio.sleep(0)
    assert woken._sleepers
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert not woken._sleepers
    woken.set()  # no sleeper left to resolve
    assert await woken.wait()


async def test_a_signal_still_wakes_plain_event_waiters() -> None:
    woken = Signal()
    waiter = asyncio.create_task(woken.wait())
    await asyncio.sleep(0)
    woken.set()
    assert await waiter
