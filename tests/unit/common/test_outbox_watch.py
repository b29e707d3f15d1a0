"""`watch_commits`: a background worker hears of every commit that enqueued an event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from services.common.outbox import mark_enqueued, watch_commits


@pytest.fixture
async def sessions() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine("sqlite+aiosqlite://")
    yield async_sessionmaker(engine)
    await engine.dispose()


async def test_a_commit_that_enqueued_sets_the_watcher(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    watcher = asyncio.Event()
    unwatch = watch_commits(watcher)
    try:
        async with sessions() as session, session.begin():
            await session.execute(sa.text("SELECT 1"))
        assert not watcher.is_set()  # a commit that enqueued nothing says nothing

        async with sessions() as session:
            await session.execute(sa.text("SELECT 1"))
            mark_enqueued(session)
            await session.rollback()
        assert not watcher.is_set()  # rolled back: no new work

        async with sessions() as session, session.begin():
            await session.execute(sa.text("SELECT 1"))
            mark_enqueued(session)
        assert watcher.is_set()
    finally:
        unwatch()


async def test_an_unwatched_event_is_no_longer_set(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    watcher = asyncio.Event()
    watch_commits(watcher)()
    async with sessions() as session, session.begin():
        await session.execute(sa.text("SELECT 1"))
        mark_enqueued(session)
    assert not watcher.is_set()
