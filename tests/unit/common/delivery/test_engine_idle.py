"""An idle engine: a claim per idle poll instead of per second, a commit heard of makes it
look again, and known due times (retries, leases) still wake it on time (`Lookout`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from services.common.delivery import DeliveryEngine
from services.common.delivery.lookout import Lookout
from services.common.delivery.store import Accepted
from services.common.outbox import heard_from_elsewhere, mark_enqueued
from tests.unit.common.delivery.fakes import T0, FakeClock, FakeStore, make_engine, order, until

POLL = timedelta(seconds=1)
IDLE = timedelta(seconds=10)
BUSY = timedelta(milliseconds=200)


def test_with_nothing_due_the_lookout_waits_the_idle_poll() -> None:
    lookout = Lookout(POLL, IDLE)
    lookout.looked(None, T0, batch=[], full=False)
    assert lookout.at == T0 + IDLE
    assert lookout.seconds_to_look(None, T0, last_claim_at=T0, busy_delay=BUSY) == 10.0


def test_a_known_due_time_comes_before_the_idle_poll() -> None:
    lookout = Lookout(POLL, IDLE)
    retry = T0 + timedelta(seconds=3)  # a retry's timer, or another process's lease end
    lookout.looked(retry, T0, batch=[], full=False)
    assert lookout.at == retry
    assert lookout.seconds_to_look(retry, T0, last_claim_at=T0, busy_delay=BUSY) == 3.0
    # Due already and not claimed by the last look (its destination is busy here): soon.
    assert lookout.seconds_to_look(T0, T0, last_claim_at=T0, busy_delay=BUSY) == 0.2
    # It became due after the last look: now.
    late = T0 + timedelta(seconds=1)
    assert lookout.seconds_to_look(late, late, last_claim_at=T0, busy_delay=BUSY) == 0.0


def test_a_commit_heard_of_brings_the_next_look_to_a_poll_after_the_last() -> None:
    lookout = Lookout(POLL, IDLE)
    lookout.heard()
    assert lookout.at is None  # never looked: the next round looks anyway
    lookout.looked(None, T0, batch=[], full=False)
    lookout.heard()
    assert lookout.at == T0 + POLL
    assert not lookout.must_look([], T0, woken=False)  # a busy process: a poll apart
    assert lookout.must_look([], T0 + POLL, woken=False)
    lookout.looked(T0 + timedelta(milliseconds=500), T0 + POLL, batch=[], full=False)
    lookout.heard()
    assert lookout.at == T0 + timedelta(milliseconds=500)  # an earlier due time stays


def test_the_idle_poll_is_never_longer_than_a_lease() -> None:
    engine, _, _, _ = make_engine(idle_poll=timedelta(minutes=5), lease=timedelta(seconds=4))
    lookout = engine._lookout
    lookout.looked(None, T0, batch=[], full=False)
    # A lease taken after this look ends after the next one, which reads when it ends.
    assert lookout.at == T0 + timedelta(seconds=4)


@pytest.fixture
async def sessions() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    database = create_async_engine("sqlite+aiosqlite://")
    yield async_sessionmaker(database)
    await database.dispose()


@asynccontextmanager
async def _idle_engine() -> AsyncIterator[tuple[DeliveryEngine, FakeStore, FakeClock]]:
    """A running engine that has made its start-up look and would not look again on its
    own within any test's patience (an idle poll of an hour)."""
    engine, store, _, clock = make_engine(
        poll_interval=POLL, idle_poll=timedelta(hours=1), lease=timedelta(hours=2)
    )
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    try:
        await until(lambda: store.claim_calls == 1)
        yield engine, store, clock
    finally:
        stop.set()
        await running


async def _accepted_elsewhere(store: FakeStore, address: str) -> Any:
    """An order another process accepted and left pending (it did not wake this engine)."""
    placed = order(address)
    await store.insert_many(None, [Accepted(placed, T0 + timedelta(hours=1))], now=T0)
    return placed


async def test_an_idle_engine_looks_again_when_another_process_commit_is_heard_of() -> None:
    async with _idle_engine() as (_, store, clock):
        placed = await _accepted_elsewhere(store, "http://l/elsewhere")
        clock.advance(POLL.total_seconds())  # a poll interval after the start-up look
        # The commit that accepted it enqueued its event; its NOTIFY reached a relay here.
        heard_from_elsewhere()
        await until(lambda: store.state(placed.delivery_id) == "delivered")
        assert store.claim_calls == 2  # one look for the commit heard of


async def test_this_process_commits_do_not_wake_an_idle_engine(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Its own orders wake it (accept_many): a commit here, enqueuing or not, adds nothing.
    async with _idle_engine() as (engine, store, _):
        async with sessions() as session, session.begin():
            await session.execute(sa.text("SELECT 1"))
        async with sessions() as session, session.begin():
            await session.execute(sa.text("SELECT 1"))
            mark_enqueued(session)
        assert not engine._heard.is_set()
        placed = await _accepted_elsewhere(store, "http://l/elsewhere")
        engine.wake()  # what an accepting commit of this process does
        await until(lambda: store.state(placed.delivery_id) == "delivered")
        assert store.claim_calls == 2


def _waiting_tasks() -> list[asyncio.Task[Any]]:
    """Tasks other than the test's own that sleep in `Event.wait()`."""
    return [
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and getattr(task.get_coro(), "__qualname__", "") == "Event.wait"
    ]


async def test_an_idle_engine_waits_without_a_task_per_event() -> None:
    # A wait was `asyncio.wait` over a task per event (stop, woken, a commit heard of),
    # made and cancelled on every wait, several times a notice: loop turns of their own.
    async with _idle_engine() as (engine, store, _):
        await until(lambda: bool(engine._wake._sleepers))  # in its idle wait
        # One task hears `stop` for the whole run; a wait adds none (before: three a wait).
        assert len(_waiting_tasks()) == 1
        placed = await _accepted_elsewhere(store, "http://l/elsewhere")
        engine.wake()
        await until(lambda: store.state(placed.delivery_id) == "delivered")
        await until(lambda: not engine._wake.is_set() and bool(engine._wake._sleepers))
        assert len(_waiting_tasks()) == 1
