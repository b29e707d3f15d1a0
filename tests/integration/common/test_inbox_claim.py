"""A message's inbox claim on real PostgreSQL and SQLite: recorded once, by one statement
for every message (and every batch size), straight to asyncpg on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import UnitOfWork, make_engine, make_session_factory
from services.common.inbox import Claim, claim_message, claim_messages
from services.common.messaging import inbox_messages
from services.common.migrations import upgrade
from services.common.settings import CommonSettings

pytestmark = [pytest.mark.postgres]


@pytest.fixture
async def engine(
    database_url: str | None, make_settings: Callable[..., CommonSettings]
) -> AsyncIterator[AsyncEngine]:
    settings = make_settings(database_url=database_url)
    await upgrade(settings, "intake")
    made = make_engine(settings, "intake")
    yield made
    await made.dispose()


@asynccontextmanager
async def _statements(engine: AsyncEngine) -> AsyncIterator[list[Any]]:
    """Every INSERT sent: SQLAlchemy's statement objects, and (PostgreSQL) the SQL text of
    what went straight to asyncpg (services/common/direct.py), which SQLAlchemy never sees."""
    seen: list[Any] = []
    logged: list[Any] = []

    def through_sqlalchemy(_conn: Any, clause: Any, *_: Any) -> None:
        if isinstance(clause, sa.Insert):
            seen.append(clause)

    def direct(record: Any) -> None:
        if record.query.lstrip().upper().startswith("INSERT"):
            seen.append(" ".join(record.query.split()))

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if engine.dialect.name == "postgresql" and driver not in logged:
            driver.add_query_logger(direct)
            logged.append(driver)

    event.listen(engine.sync_engine, "before_execute", through_sqlalchemy)
    event.listen(engine.sync_engine.pool, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_execute", through_sqlalchemy)
        event.remove(engine.sync_engine.pool, "checkout", checkout)
        for driver in logged:
            driver.remove_query_logger(direct)


async def _inbox(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(inbox_messages))).all()
    assert all(isinstance(r.processed_at, datetime) for r in rows)
    return sorted((r.consumer, r.message_id, r.topic) for r in rows)


async def test_a_claim_is_recorded_once_by_one_statement(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    answers = []
    async with _statements(engine) as executed:
        for message_id in ("m-1", "m-2", "m-1"):
            async with UnitOfWork(sessions) as uow:
                answers.append(
                    await claim_message(uow.session, consumer="c", message_id=message_id, topic="t")
                )
                await uow.commit()
        await asyncio.sleep(0)  # asyncpg reports a query on the loop turn after it answered
    assert answers == [True, True, False]  # the second m-1 is a duplicate
    assert len(executed) == 3
    if engine.dialect.name == "postgresql":
        # Straight to asyncpg: the same SQL text each time, no SQLAlchemy statement.
        assert all(isinstance(sql, str) and sql == executed[0] for sql in executed)
    else:
        assert all(clause is executed[0] for clause in executed)
    assert await _inbox(engine) == [("c", "m-1", "t"), ("c", "m-2", "t")]


async def test_a_batch_of_claims_reports_what_was_new(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    async with UnitOfWork(sessions) as uow:
        assert await claim_message(uow.session, consumer="c", message_id="old", topic="t")
        await uow.commit()
    batches = [
        [Claim("c", "old", "t"), Claim("c", "n-1", "t"), Claim("d", "old", "u")],
        [Claim("c", "n-2", "t"), Claim("c", "n-2", "t"), Claim("c", "n-1", "t")],
        [Claim("e", f"x-{i}", "v") for i in range(5)],
    ]
    news = []
    async with _statements(engine) as executed:
        for batch in batches:
            async with UnitOfWork(sessions) as uow:
                news.append(await claim_messages(uow.session, batch))
                await uow.commit()
        async with UnitOfWork(sessions) as uow:  # rolled back: claims nothing
            assert await claim_messages(uow.session, [Claim("f", "gone", "w")])
        await asyncio.sleep(0)
    assert news == [
        {("c", "n-1"), ("d", "old")},
        {("c", "n-2")},  # a pair twice in one batch is new once; n-1 was claimed before
        {("e", f"x-{i}") for i in range(5)},
    ]
    if engine.dialect.name == "postgresql":
        # One statement text for every batch size: one prepared statement, one plan.
        assert len(executed) == 4
        assert len(set(executed)) == 1
    assert len(await _inbox(engine)) == 1 + 2 + 1 + 5
