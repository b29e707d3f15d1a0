"""On PostgreSQL an enqueued row wakes relays in other processes (NOTIFY), on commit only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import asyncpg_dsn, make_engine, make_session_factory
from services.common.migrations import upgrade
from services.common.outbox import enqueue
from services.common.settings import CommonSettings
from tests.support import infra
from tests.support.events import notice_updated

pytestmark = [pytest.mark.postgres]


@pytest.fixture
async def engine(
    postgres_url: str, make_settings: Callable[..., CommonSettings]
) -> AsyncIterator[AsyncEngine]:
    url = await infra.fresh_database_async(postgres_url)
    settings = make_settings(database_url=url)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    try:
        yield engine
    finally:
        await engine.dispose()
        await infra.drop_database_async(url)


async def test_enqueue_notifies_on_commit_and_not_on_rollback(engine: AsyncEngine) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(asyncpg_dsn(engine.url))
    await listener.add_listener("aviso_outbox_intake", lambda *args: heard.put_nowait(args[2]))
    sessions = make_session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            await enqueue(session, notice_updated(uuid.uuid4(), 2), source="aviso.test")
            await session.rollback()
        async with sessions() as session, session.begin():
            await enqueue(session, notice_updated(uuid.uuid4(), 2), source="aviso.test")
        assert await asyncio.wait_for(heard.get(), timeout=30) == "aviso_outbox_intake"
        assert heard.empty()  # the rolled-back row said nothing
    finally:
        await listener.close()
