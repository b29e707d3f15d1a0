"""A notice's triggered -> delivered is a HOT update on PostgreSQL (router_0007).

The outcome round sets only the alert's `state` and `updated_at`. No index of the alerts
names either (as a key or in a predicate) and each page keeps room for a new version, so
PostgreSQL rewrites the row in place and adds no index entry. Counted in the updating
transaction itself (`pg_stat_get_xact_tuples_hot_updated`), so nothing waits for the
statistics collector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.common.db import make_engine
from services.common.migrations import alembic_config, upgrade
from services.router.config import RouterSettings
from services.router.repository import SqlAlertRepository
from tests.integration.router.router_support import migrated_engine

pytestmark = [pytest.mark.postgres]

NOW = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
# As wide as a real alert's row: its content and snapshot are ~850 B each.
WIDE = '{"summary": "' + "x" * 1700 + '"}'


@pytest.fixture
async def engine(pg_database: str, make_settings: Callable[..., Any]) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(pg_database, make_settings) as engine:
        yield engine


async def _insert(engine: AsyncEngine, n: int, *, resolved_every: int = 0) -> None:
    """`n` alerts (ids from `md5('a' || i)`), every `resolved_every`-th resolved, their
    windows over an hour ago."""
    resolved = f"i % {resolved_every} = 0" if resolved_every else "false"
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO alerts SELECT md5('a' || i)::uuid::text, md5('n' || i)::uuid::text, "
                "1, 'Actual', "
                f"CASE WHEN {resolved} THEN 'resolved' ELSE 'triggered' END, 'high', "
                "CAST(:wide AS json), CAST(:wide AS json), 0, 0, 0, NULL, NULL, NULL, "
                ":now, :now, NULL, NULL, NULL, NULL, NULL, :expired, "
                f"CASE WHEN {resolved} THEN CAST(:now AS timestamptz) END, NULL, :now "
                "FROM generate_series(1, :n) AS i"
            ),
            {"wide": WIDE, "now": NOW, "expired": NOW - timedelta(hours=1), "n": n},
        )


async def test_an_alert_marked_delivered_is_updated_in_place(engine: AsyncEngine) -> None:
    await _insert(engine, 12)
    async with engine.begin() as conn:
        for i in range(1, 13):
            await conn.execute(
                sa.text(
                    "UPDATE alerts SET state = 'delivered', updated_at = :at "
                    "WHERE id = md5('a' || CAST(:i AS text))::uuid::text AND state = 'triggered'"
                ),
                {"i": str(i), "at": NOW + timedelta(seconds=1)},
            )
        hot = await conn.scalar(
            sa.text("SELECT pg_stat_get_xact_tuples_hot_updated(CAST('alerts' AS regclass))")
        )
        updated = await conn.scalar(
            sa.text("SELECT pg_stat_get_xact_tuples_updated(CAST('alerts' AS regclass))")
        )
    assert updated == 12
    assert hot == 12


async def test_the_expiry_sweep_sees_unresolved_alerts_only(engine: AsyncEngine) -> None:
    await _insert(engine, 6, resolved_every=2)  # three open, three resolved
    async with engine.connect() as conn, conn.begin():
        alerts = SqlAlertRepository(AsyncSession(bind=conn), source="router")
        claimed = []
        while (due := await alerts.claim_due_expiry(now=NOW, skip=claimed)) is not None:
            claimed.append(str(due))
        deadline = await alerts.next_deadline()
    assert len(claimed) == 3
    assert deadline == NOW - timedelta(hours=1)


def _alerts_indexes(connection: Connection) -> dict[str, str]:
    """The alerts' indexes by name, each with its predicate's text ('' for none)."""
    found = sa.inspect(connection).get_indexes("alerts")
    return {
        str(ix["name"]): str(
            ix.get("dialect_options", {}).get(f"{connection.dialect.name}_where", "")
        )
        for ix in found
    }


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config("router")
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_the_state_index_goes_and_comes_back(
    database_url: str | None, make_settings: Callable[..., Any]
) -> None:
    settings: RouterSettings = make_settings(RouterSettings, database_url=database_url)
    await upgrade(settings, "router", "router_0006")
    engine = make_engine(settings, "router")
    try:
        async with engine.connect() as conn:
            before = await conn.run_sync(_alerts_indexes)
            assert "ix_alerts_state" in before
            assert "state" in before["ix_alerts_unresolved_expiry"]
        await upgrade(settings, "router")
        async with engine.connect() as conn:
            head = await conn.run_sync(_alerts_indexes)
            assert "ix_alerts_state" not in head
            assert "resolved_at" in head["ix_alerts_unresolved_expiry"]
            assert not any("state" in predicate for predicate in head.values())
            await conn.run_sync(_downgrade, "router_0006")
            await conn.commit()
            assert await conn.run_sync(_alerts_indexes) == before
    finally:
        await engine.dispose()
