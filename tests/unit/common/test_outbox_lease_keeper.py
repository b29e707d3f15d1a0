"""A relay round's lease heartbeat is a timer: it costs no task and no loop turn to stop,
renews until stopped, and a stop waits for a renewal under way (counted, no clocks)."""

from __future__ import annotations

import asyncio

from services.common.outbox.leases import LeaseKeeper

DEADLINE_S = 30.0


async def test_stopping_a_round_s_heartbeat_takes_no_loop_turn_and_no_task() -> None:
    renewals: list[int] = []

    async def renew() -> None:
        renewals.append(1)

    turns: list[int] = []
    before = len(asyncio.all_tasks())
    keeper = LeaseKeeper(renew=renew, every_s=3600)
    async with keeper:
        assert len(asyncio.all_tasks()) == before  # a timer, no heartbeat task
        asyncio.get_running_loop().call_soon(turns.append, 1)
        await keeper.stop()
        assert turns == []  # stop returned before the loop ran anything else
    assert renewals == []


async def test_the_heartbeat_renews_until_stopped_and_never_after() -> None:
    renewals = 0
    three = asyncio.Event()

    async def renew() -> None:
        nonlocal renewals
        renewals += 1
        if renewals == 3:
            three.set()

    keeper = LeaseKeeper(renew=renew, every_s=0.001)
    async with keeper:
        await asyncio.wait_for(three.wait(), DEADLINE_S)
    stopped_at = renewals
    # Fifty timer periods with nothing left to fire. A fixed wait is safe here: a loaded
    # machine only runs fewer of them, and a renewal after stop would still be caught.
    await asyncio.sleep(0.05)
    assert renewals == stopped_at >= 3


async def test_stop_waits_for_a_renewal_under_way() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[bool] = []

    async def renew() -> None:
        started.set()
        await release.wait()
        finished.append(True)

    keeper = LeaseKeeper(renew=renew, every_s=0)
    await keeper.__aenter__()
    await asyncio.wait_for(started.wait(), DEADLINE_S)
    stopping = asyncio.create_task(keeper.stop())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not stopping.done()  # the renewal still runs: stop must not return yet
    release.set()
    await asyncio.wait_for(stopping, DEADLINE_S)
    assert finished == [True]
