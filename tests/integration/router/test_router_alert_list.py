"""The alert list reads a page newest first from `ix_alerts_listed` (router_0008).

router_0007 dropped the only index on `state` (so a notice's triggered -> delivered is a
HOT update); alerts are never deleted, and a list filtered by state read and sorted every
one of them. On a router schema with realistic rows (thousands of alerts, nearly all
resolved, analysed), each list runs as the code sends it and `EXPLAIN` of that statement
with its values shows the plan: an index scan in the list's order, no sort. No timing is
asserted. The migration adds the index and the downgrade takes it away, on both back ends.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from services.common.db import make_engine
from services.common.migrations import alembic_config, upgrade
from services.router import domain
from services.router.config import RouterSettings
from services.router.domain import ACKNOWLEDGEABLE_STATES, DirectoryVersion
from services.router.repository import SqlAlertRepository
from services.router.repository.alert_rows import alert_values
from tests.integration.router.router_support import migrated_engine
from tests.support.alerts import plain_notice, spoc_then_backup

pytestmark = [pytest.mark.postgres]

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
ALERTS = 4_000  # one in forty still open
HORIZON = timedelta(hours=24)


@pytest.fixture
async def engine(pg_database: str, make_settings: Callable[..., Any]) -> AsyncIterator[AsyncEngine]:
    """Router's engine on a migrated, populated and analysed router schema."""
    async with migrated_engine(pg_database, make_settings) as engine:
        async with engine.begin() as conn:
            await _populate(conn)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("ANALYZE alerts"))
        yield engine


def _stored_content_and_snapshot() -> tuple[str, str]:
    """A real alert's content and directory snapshot, as their columns store them."""
    document = spoc_then_backup(
        spoc=uuid.uuid4(),
        backup=uuid.uuid4(),
        spoc_channels={"email": "s@p.example"},
        backup_channels={"email": "b@p.example"},
        wait_s=60,
    )
    directory = DirectoryVersion(
        version=1, document=document, digest="d", source="api", created_by="t", created_at=NOW
    )
    opened = domain.open_alert(
        plain_notice(NOW), directory=directory, now=NOW, horizon=HORIZON, correlation_id=None
    )
    values = alert_values(opened.after)
    return json.dumps(values["content"]), json.dumps(values["snapshot"])


async def _populate(conn: AsyncConnection) -> None:
    """`ALERTS` alerts, one a minute up to NOW, each window ending 1 to 10 hours after;
    every fortieth delivered, the rest resolved."""
    content, snapshot = _stored_content_and_snapshot()
    triggered = "CAST(:now AS timestamptz) - (:n - i) * interval '1 minute'"
    await conn.execute(
        sa.text(
            "INSERT INTO alerts SELECT md5('a' || i)::uuid::text, md5('n' || i)::uuid::text, "
            "1, 'Actual', CASE WHEN i % 40 = 0 THEN 'delivered' ELSE 'resolved' END, 'high', "
            "CAST(:content AS json), CAST(:snapshot AS json), 0, 0, 0, NULL, NULL, NULL, "
            f"{triggered}, :now, NULL, NULL, NULL, NULL, NULL, "
            f"{triggered} + (60 + i * 7919 % 540) * interval '1 minute', "
            "CASE WHEN i % 40 = 0 THEN NULL ELSE CAST(:now AS timestamptz) END, NULL, :now "
            "FROM generate_series(1, :n) AS i"
        ),
        {"now": NOW, "n": ALERTS, "content": content, "snapshot": snapshot},
    )


async def _page_and_statements(
    engine: AsyncEngine, states: Sequence[str], limit: int
) -> tuple[list[Any], list[tuple[str, Any]]]:
    """The first page of the alert list in `states`, and every statement sent to read it."""
    sent: list[tuple[str, Any]] = []

    def seen(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with engine.connect() as conn, conn.begin():
            alerts = SqlAlertRepository(AsyncSession(bind=conn), source="router")
            page = await alerts.page(states=states, limit=limit, offset=0)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    return page, sent


async def _listed_with_plan(
    engine: AsyncEngine, states: Sequence[str], limit: int
) -> tuple[list[datetime], str]:
    """The page's alerts' trigger times, and the plan of the statement that read them."""
    page, sent = await _page_and_statements(engine, states, limit)
    ((statement, parameters),) = sent
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        rows = await raw.driver_connection.fetch(f"EXPLAIN {statement}", *parameters)
    return [a.triggered_at for a in page], "\n".join(row[0] for row in rows)


@pytest.mark.parametrize(
    "states", [["resolved"], ["delivered", "resolved"], []], ids=["resolved", "any", "all"]
)
async def test_a_page_is_read_in_the_list_index_order_without_a_sort(
    engine: AsyncEngine, states: list[str]
) -> None:
    times, plan = await _listed_with_plan(engine, states, 50)
    assert len(times) == 50
    assert times == sorted(times, reverse=True)
    assert "Index Scan using ix_alerts_listed " in plan, plan
    assert "Sort" not in plan, plan


@pytest.mark.parametrize(
    ("states", "limit"),
    # One open state; the SMS reply's search (and the list's `open`).
    [(["delivered"], 50), (sorted(ACKNOWLEDGEABLE_STATES), 500)],
    ids=["delivered", "acknowledgeable"],
)
async def test_a_page_of_unresolved_states_reads_only_unresolved_alerts(
    engine: AsyncEngine, states: list[str], limit: int
) -> None:
    """The few unresolved alerts, from the expiry's partial index (sorted: only they), or
    in the list index's order; never every alert."""
    times, plan = await _listed_with_plan(engine, states, limit)
    assert len(times) == min(limit, ALERTS // 40)
    assert times == sorted(times, reverse=True)
    assert "Seq Scan" not in plan, plan
    unresolved_only = "Index Scan using ix_alerts_unresolved_expiry " in plan
    in_list_order = "Index Scan using ix_alerts_listed " in plan and "Sort" not in plan
    assert unresolved_only or in_list_order, plan


@pytest.mark.parametrize(
    "states", [["resolved"], ["delivered"], []], ids=["resolved", "delivered", "all"]
)
async def test_sqlite_reads_a_page_in_the_list_index_order(
    make_settings: Callable[..., Any], states: list[str]
) -> None:
    """SQLite (the embedded default) walks the same index and builds no sort for it."""
    settings: RouterSettings = make_settings(RouterSettings)
    await upgrade(settings, "router")
    engine = make_engine(settings, "router")
    try:
        page, sent = await _page_and_statements(engine, states, 50)
        assert page == []
        (statement, parameters) = next((s, p) for s, p in sent if "ORDER BY" in s)
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plan = "\n".join(str(row[-1]) for row in rows)
    finally:
        await engine.dispose()
    assert "ix_alerts_listed" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


def _index_names(connection: Connection) -> set[str]:
    return {str(ix["name"]) for ix in sa.inspect(connection).get_indexes("alerts")}


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config("router")
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_the_list_index_comes_and_goes(
    database_url: str | None, make_settings: Callable[..., Any]
) -> None:
    settings: RouterSettings = make_settings(RouterSettings, database_url=database_url)
    await upgrade(settings, "router", "router_0007")
    engine = make_engine(settings, "router")
    try:
        async with engine.connect() as conn:
            before = await conn.run_sync(_index_names)
            assert "ix_alerts_listed" not in before
        await upgrade(settings, "router")
        async with engine.connect() as conn:
            assert await conn.run_sync(_index_names) == before | {"ix_alerts_listed"}
            await conn.run_sync(_downgrade, "router_0007")
            await conn.commit()
            assert await conn.run_sync(_index_names) == before
    finally:
        await engine.dispose()
