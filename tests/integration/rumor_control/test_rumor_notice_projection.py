"""The notice projection on both back ends: a first version, a waiting standby request,
and versions that arrive out of order.

On PostgreSQL a notice seen for the first time costs rumor_control one statement inside
its transaction (`project_first_version`: the notice's lock, then the standby request's
DELETE and the row's INSERT) and no search for drafts citing it; the counts below (every
statement sent, through SQLAlchemy or straight to asyncpg, BEGIN and COMMIT left out)
fail if that comes undone.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.db import make_engine, make_session_factory
from services.common.migrations import upgrade
from services.rumor_control.config import RumorControlSettings
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import VersionApplied
from services.rumor_control.notices import apply_notice
from services.rumor_control.repository.notices import SqlNotices
from services.rumor_control.tables import standby_requests
from services.rumor_control.unit_of_work import RumorControlUnitOfWork
from tests.integration.router.router_support import notice, update
from tests.support.statements import record_statements

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass
class _Db:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    statements: list[str]
    settings: RumorControlSettings

    async def work(self) -> list[str]:
        """The statements counted, without BEGIN and COMMIT (asyncpg reports a query on
        the loop turn after it answered)."""
        await asyncio.sleep(0)
        return list(self.statements)


@pytest.fixture
async def db(database_url: str | None, tmp_path: Path) -> AsyncIterator[_Db]:
    settings = RumorControlSettings(var_dir=tmp_path / "var", database_url=database_url)
    await upgrade(settings, "rumor_control")
    engine = make_engine(settings, "rumor_control")
    statements = record_statements(engine)
    try:
        yield _Db(engine, make_session_factory(engine), statements, settings)
    finally:
        await engine.dispose()


async def _apply(db: _Db, version: Any) -> VersionApplied:
    async with db.sessions() as session, session.begin():
        return await SqlNotices(session).apply_version(version, at=AT)


async def test_a_first_version_is_projected_and_on_postgresql_costs_one_statement(
    db: _Db, database_url: str | None
) -> None:
    first = notice().model_copy(update={"restricted_fingerprints": ("a" * 32,)})
    db.statements.clear()

    assert await _apply(db, first) == VersionApplied(first_seen=True, standby_requested=False)

    if database_url is not None:
        assert len(await db.work()) == 1, await db.work()
    async with db.sessions() as session:
        row = await SqlNotices(session).get(first.notice_id)
    assert row is not None
    assert (row.version, row.area, row.fingerprints) == (1, "District 4", frozenset({"a" * 32}))
    assert row.key_ids == frozenset({"test"})


async def test_a_waiting_standby_request_is_taken_once(db: _Db) -> None:
    first = notice()
    async with db.sessions() as session, session.begin():
        await SqlNotices(session).request_standby(
            notice_id=first.notice_id, alert_id=uuid.uuid4(), by=uuid.uuid4(), at=AT
        )

    assert await _apply(db, first) == VersionApplied(first_seen=True, standby_requested=True)
    # A redelivery finds the notice known and no request left.
    assert await _apply(db, first) == VersionApplied(first_seen=False, standby_requested=False)
    async with db.engine.connect() as connection:
        assert (
            await connection.scalar(sa.select(sa.func.count()).select_from(standby_requests)) == 0
        )


async def test_versions_out_of_order_keep_the_newest_fields_and_every_fingerprint(
    db: _Db,
) -> None:
    first = notice().model_copy(update={"restricted_fingerprints": ("a" * 32,)})
    second = update(first, 2, summary="Moved.").model_copy(
        update={"area": "District 9", "restricted_fingerprints": ("b" * 32,)}
    )

    assert (await _apply(db, second)).first_seen
    assert not (await _apply(db, first)).first_seen  # the older version arrives late

    async with db.sessions() as session:
        row = await SqlNotices(session).get(first.notice_id)
    assert row is not None
    assert (row.version, row.area) == (2, "District 9")
    assert row.fingerprints == frozenset({"a" * 32, "b" * 32})


async def test_a_new_notice_costs_the_use_case_one_statement_and_a_known_one_a_recheck(
    db: _Db, database_url: str | None
) -> None:
    deps = RumorControlDeps.build(
        db.settings, sessions=db.sessions, source="aviso.rumor_control", delivery=_NoDelivery()
    )
    first = notice()

    async def project(version: Any) -> list[str]:
        db.statements.clear()
        async with RumorControlUnitOfWork(db.sessions, source=deps.source) as uow:
            await apply_notice(uow, deps=deps, notice=version)
            await uow.commit()
        return await db.work()

    new = await project(first)
    again = await project(update(first, 2, summary="Moved."))

    if database_url is not None:
        # The lock, the request's DELETE and the INSERT, in one function call.
        assert len(new) == 1, new
        assert "project_first_version" in new[0], new
    assert not any("bulletin" in s for s in new)
    assert any("bulletin" in s for s in again)  # a known notice's drafts are re-checked


class _NoDelivery:
    async def accept_many(self, session: object, orders: object) -> int:
        return 0
