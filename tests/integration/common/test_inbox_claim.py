"""A message's inbox claim on real PostgreSQL and SQLite: recorded once, its statement
built once and reused for every message."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import UnitOfWork, make_engine, make_session_factory
from services.common.inbox import claim_message
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


async def test_a_claim_is_recorded_once_by_one_statement_object(engine: AsyncEngine) -> None:
    executed: list[Any] = []

    def seen(_conn: Any, clause: Any, *_: Any) -> None:
        if isinstance(clause, sa.Insert):
            executed.append(clause)

    event.listen(engine.sync_engine, "before_execute", seen)
    sessions = make_session_factory(engine)
    answers = []
    for message_id in ("m-1", "m-2", "m-1"):
        async with UnitOfWork(sessions) as uow:
            answers.append(
                await claim_message(uow.session, consumer="c", message_id=message_id, topic="t")
            )
            await uow.commit()
    assert answers == [True, True, False]  # the second m-1 is a duplicate
    assert len(executed) == 3
    assert all(clause is executed[0] for clause in executed)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(inbox_messages))).all()
    assert sorted((r.consumer, r.message_id, r.topic) for r in rows) == [
        ("c", "m-1", "t"),
        ("c", "m-2", "t"),
    ]
    assert all(isinstance(r.processed_at, datetime) for r in rows)
