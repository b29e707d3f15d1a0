"""Two first JOINs from one number at once, on PostgreSQL: one subscriber, both answered.

Both transactions find no subscriber; the second one's insert waits on the first's
uncommitted row (the unique number hash). Once the first commits, the second must treat
the number as the existing subscriber, not fail on the constraint.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common.db import make_engine, make_session_factory
from services.common.migrations import upgrade
from services.rumor_control.community.use_cases import handle_keyword
from services.rumor_control.config import RumorControlSettings
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.tables import sms_subscribers
from services.rumor_control.unit_of_work import RumorControlUnitOfWork
from tests.support.kafka_io import wait_for

pytestmark = [pytest.mark.postgres]

NUMBER = "+15557650501"


async def _waiting_on_a_lock(engine: sa.ext.asyncio.AsyncEngine) -> bool:
    async with engine.connect() as connection:
        waiting = await connection.scalar(
            sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
        )
    return bool(waiting)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_first_joins_at_once_make_one_subscriber_and_both_are_answered(
    database_url: str, tmp_path: Path
) -> None:
    settings = RumorControlSettings(var_dir=tmp_path / "var", database_url=database_url)
    await upgrade(settings, "rumor_control")
    engine = make_engine(settings, "rumor_control")
    try:
        sessions = make_session_factory(engine)
        deps = RumorControlDeps.build(
            settings, sessions=sessions, source="aviso.rumor_control", delivery=_NoDelivery()
        )
        async with RumorControlUnitOfWork(sessions, source=deps.source) as first:
            answered_first = await handle_keyword(first, deps=deps, sender=NUMBER, text="UNIRME")

            async def second_join() -> str | None:
                async with RumorControlUnitOfWork(sessions, source=deps.source) as second:
                    outcome = await handle_keyword(second, deps=deps, sender=NUMBER, text="JOIN")
                    await second.commit()
                return outcome.reply

            second = asyncio.create_task(second_join())
            # The second JOIN has found no subscriber and now waits on the first's row.
            await wait_for(lambda: _waiting_on_a_lock(engine), timeout=30, interval=0.05)
            assert not second.done()
            await first.commit()
        answered_second = await asyncio.wait_for(second, timeout=30)

        assert answered_first.reply is not None
        assert "CONFIRMO" in answered_first.reply
        assert answered_second is not None
        assert "YES" in answered_second
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.select(sms_subscribers))).mappings().all()
        assert [(r["subscriber_id"], r["state"]) for r in rows] == [
            (str(answered_first.subscriber_id), "pending")
        ]
    finally:
        await engine.dispose()


class _NoDelivery:
    async def accept_many(self, session: object, orders: object) -> int:
        return 0
