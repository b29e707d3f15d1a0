"""Many rows in one statement on real PostgreSQL and SQLite: order, types, conflicts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine.default import CacheStats
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.common.bulk import insert_rows
from services.common.db import make_engine
from services.common.settings import CommonSettings

pytestmark = [pytest.mark.postgres]

_metadata = sa.MetaData()
rows_table = sa.Table(
    "bulk_rows",
    _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("ref", sa.String(36), nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("step", sa.Integer, nullable=True),
    sa.Column("detail", sa.JSON, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
)


@pytest.fixture
async def engine(
    database_url: str | None, make_settings: Callable[..., CommonSettings]
) -> AsyncIterator[AsyncEngine]:
    made = make_engine(make_settings(database_url=database_url), "router")
    async with made.begin() as conn:
        if made.dialect.name == "postgresql":
            await conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS router"))
        await conn.run_sync(_metadata.create_all)
    yield made
    await made.dispose()


def _row(n: int, at: datetime) -> dict[str, object]:
    return {
        "ref": f"ref-{n:04d}",
        "at": at + timedelta(seconds=n),
        "step": n if n % 3 else None,  # NULLs inside an array
        "detail": {"n": n, "reason": "timeout", "nested": [1, "ü"]} if n % 2 else None,
        "note": "línea\u2028dos" if n == 7 else f"row {n}",
    }


def _statements(engine: AsyncEngine) -> list[str]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    return seen


async def test_rows_keep_their_order_and_values(engine: AsyncEngine) -> None:
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    # Refs in descending order: ids must follow the order given, not the refs' order.
    rows = [_row(n, at) for n in range(250, 0, -1)]
    statements = _statements(engine)
    async with AsyncSession(bind=engine) as session, session.begin():
        await insert_rows(session, rows_table, rows)
    if engine.dialect.name == "postgresql":
        assert len(statements) == 1, "one statement for the whole batch"
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(rows_table).order_by(rows_table.c.id))).all()
    assert [r.ref for r in stored] == [r["ref"] for r in rows]
    for got, want in zip(stored, rows, strict=True):
        stored_at = got.at if got.at.tzinfo else got.at.replace(tzinfo=UTC)
        assert stored_at == want["at"]
        assert (got.step, got.detail, got.note) == (want["step"], want["detail"], want["note"])


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_statement_is_compiled_once(engine: AsyncEngine) -> None:
    """Batches of different sizes reuse one compiled statement (a VALUES list would not)."""
    at = datetime(2026, 11, 28, tzinfo=UTC)
    hits: list[CacheStats] = []

    def after(
        _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, *_: Any
    ) -> None:
        hits.append(context.cache_hit)

    event.listen(engine.sync_engine, "after_cursor_execute", after)
    for start, size in ((0, 3), (100, 40), (200, 7)):
        async with AsyncSession(bind=engine) as session, session.begin():
            await insert_rows(session, rows_table, [_row(start + n, at) for n in range(size)])
    assert hits[1:] == [CacheStats.CACHE_HIT, CacheStats.CACHE_HIT]


async def test_skip_conflicts_leaves_existing_rows(engine: AsyncEngine) -> None:
    at = datetime(2026, 11, 28, tzinfo=UTC)
    async with AsyncSession(bind=engine) as session, session.begin():
        await insert_rows(session, rows_table, [_row(1, at)])
    again = [{**_row(1, at), "note": "changed"}, _row(2, at)]
    async with AsyncSession(bind=engine) as session, session.begin():
        await insert_rows(session, rows_table, again, skip_conflicts=True)
    async with engine.connect() as conn:
        notes = dict((await conn.execute(sa.select(rows_table.c.ref, rows_table.c.note))).all())
    assert notes == {"ref-0001": "row 1", "ref-0002": "row 2"}


async def test_rows_naming_different_columns_are_refused(engine: AsyncEngine) -> None:
    at = datetime(2026, 11, 28, tzinfo=UTC)
    odd = {k: v for k, v in _row(2, at).items() if k != "note"}
    async with AsyncSession(bind=engine) as session, session.begin():
        with pytest.raises(ValueError, match="same columns"):
            await insert_rows(session, rows_table, [_row(1, at), odd])
