"""The notice projection's repository on both back ends: a first version, a waiting
standby request, and versions that arrive out of order.

On PostgreSQL a notice seen for the first time is one statement (the standby request's
DELETE and the row's INSERT together); the count below fails if that fold comes undone.
"""

from __future__ import annotations

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
from services.rumor_control.repository.notices import SqlNotices
from services.rumor_control.tables import standby_requests
from tests.integration.router.router_support import notice, update

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass
class _Db:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    statements: list[str]


@pytest.fixture
async def db(database_url: str | None, tmp_path: Path) -> AsyncIterator[_Db]:
    settings = RumorControlSettings(var_dir=tmp_path / "var", database_url=database_url)
    await upgrade(settings, "rumor_control")
    engine = make_engine(settings, "rumor_control")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield _Db(engine, make_session_factory(engine), statements)
    finally:
        await engine.dispose()


async def _apply(db: _Db, version: Any) -> bool:
    async with db.sessions() as session, session.begin():
        return await SqlNotices(session).apply_version(version, at=AT)


async def test_a_first_version_is_projected_and_on_postgresql_costs_one_statement(
    db: _Db, database_url: str | None
) -> None:
    first = notice().model_copy(update={"restricted_fingerprints": ("a" * 32,)})
    db.statements.clear()

    assert await _apply(db, first) is False

    writes = [s for s in db.statements if not s.lstrip().upper().startswith(("BEGIN", "COMMIT"))]
    if database_url is not None:
        assert len(writes) == 1, writes
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

    assert await _apply(db, first) is True
    assert await _apply(db, first) is False  # a redelivery finds no request left
    async with db.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(standby_requests)) == 0


async def test_versions_out_of_order_keep_the_newest_fields_and_every_fingerprint(
    db: _Db,
) -> None:
    first = notice().model_copy(update={"restricted_fingerprints": ("a" * 32,)})
    second = update(first, 2, summary="Moved.").model_copy(
        update={"area": "District 9", "restricted_fingerprints": ("b" * 32,)}
    )

    assert await _apply(db, second) is False
    assert await _apply(db, first) is False  # the older version arrives late

    async with db.sessions() as session:
        row = await SqlNotices(session).get(first.notice_id)
    assert row is not None
    assert (row.version, row.area) == (2, "District 9")
    assert row.fingerprints == frozenset({"a" * 32, "b" * 32})
