"""Router's statements whose plan needs an index keep it in their generic plan (the
plan PostgreSQL keeps for a prepared statement once it costs no more than the custom
ones, or always under `plan_cache_mode = force_generic_plan`).

On a router schema with realistic rows (thousands of alerts, nearly all resolved; many
delivery records in flight), each statement runs as the code sends it, on router's own
engine, on a connection told to plan generically; then `pg_prepared_statements` (the
connection's own) says which kind of plan it ran with, and `EXPLAIN EXECUTE` of that very
prepared statement shows the plan. No timing is asserted: only the plan's kind and the
index it uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from services.common.delivery.settle_query import settle_arrays, settle_batch_statement
from services.common.direct import DirectStatement
from services.router.repository import SqlAlertRepository
from services.router.tables import delivery_records
from tests.integration.router.router_support import migrated_engine

pytestmark = [pytest.mark.postgres]

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
ALERTS = 4_000  # one in forty unresolved
IN_FLIGHT = 1_500  # delivery records being sent


@pytest.fixture
async def engine(pg_database: str, make_settings: Callable[..., Any]) -> AsyncIterator[AsyncEngine]:
    """Router's engine on a migrated, populated and analysed router schema."""
    async with migrated_engine(pg_database, make_settings) as engine:
        async with engine.begin() as conn:
            await _populate(conn)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("ANALYZE alerts"))
            await conn.execute(sa.text("ANALYZE delivery_records"))
        yield engine


async def _populate(conn: AsyncConnection) -> None:
    now = sa.bindparam("now", NOW)
    await conn.execute(
        sa.text(
            "INSERT INTO alerts SELECT md5('a' || i)::uuid::text, md5('n' || i)::uuid::text, "
            "1, 'Actual', CASE WHEN i % 40 = 0 THEN 'delivered' ELSE 'resolved' END, 'high', "
            "'{}'::json, '{}'::json, 0, 0, 0, NULL, NULL, NULL, :now, :now, NULL, NULL, "
            "NULL, NULL, NULL, :now + i * interval '1 minute', "
            "CASE WHEN i % 40 = 0 THEN NULL ELSE :now END, NULL, :now "
            "FROM generate_series(1, :n) AS i"
        ).bindparams(now, n=ALERTS)
    )
    await conn.execute(
        sa.text(
            "INSERT INTO delivery_records (delivery_id, aggregate_id, aggregate_version, "
            "recipient_id, channel, purpose, language, context, state, attempts, "
            "next_attempt_at, give_up_at, claimed_by, claimed_until, created_at, updated_at) "
            "SELECT md5('d' || i)::uuid::text, md5('a' || i)::uuid::text, 1, 'spoc', "
            "'webhook', 'alert', 'en', '{}'::json, "
            "CASE WHEN i <= :flight THEN 'sending' ELSE 'delivered' END, 1, :now, "
            ":now + interval '1 hour', 'router-1', :now + interval '30 seconds', :now, :now "
            "FROM generate_series(1, :n) AS i"
        ).bindparams(now, flight=IN_FLIGHT, n=3 * ALERTS)
    )


async def _prepared(conn: AsyncConnection, marker: str) -> dict[str, Any]:
    """The connection's prepared statement whose text holds `marker`."""
    rows = (
        await conn.execute(
            sa.text(
                "SELECT name, statement, generic_plans, custom_plans, "
                "cardinality(parameter_types) AS arity, "
                "parameter_types::text[] AS types FROM pg_prepared_statements "
                "WHERE strpos(statement, :marker) > 0"
            ),
            {"marker": marker},
        )
    ).mappings()
    found = [dict(row) for row in rows]
    assert len(found) == 1, found
    return found[0]


async def _explain(conn: AsyncConnection, name: str, arguments: str) -> str:
    """EXPLAIN of the prepared statement `name` as this connection would run it now."""
    driver = await driver_connection_of(conn)
    values = f"({arguments})" if arguments else ""
    rows = await driver.fetch(f'EXPLAIN EXECUTE "{name}"{values}')
    return "\n".join(row[0] for row in rows)


async def _plan_generically(conn: AsyncConnection) -> None:
    """This connection's prepared statements run their generic plan from the first call."""
    driver = await driver_connection_of(conn)
    await driver.execute("SET plan_cache_mode = force_generic_plan")


async def driver_connection_of(conn: AsyncConnection) -> Any:
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def test_the_expiry_sweep_keeps_the_partial_index_in_a_generic_plan(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        await _plan_generically(conn)
        async with conn.begin():
            alerts = SqlAlertRepository(AsyncSession(bind=conn), source="router")
            due = await alerts.claim_due_expiry(now=NOW + timedelta(hours=1))
            deadline = await alerts.next_deadline()
        assert due is not None
        assert deadline == NOW + timedelta(minutes=40)

        sweep = await _prepared(conn, "FOR UPDATE SKIP LOCKED")
        assert sweep["generic_plans"] >= 1
        assert sweep["custom_plans"] == 0
        # By type: a state (where one is bound), the time, the limit.
        values = {"character varying": "'resolved'", "integer": "1"}
        at = f"'{NOW.isoformat()}'::timestamptz"
        arguments = ", ".join(values.get(kind, at) for kind in sweep["types"])
        plan = await _explain(conn, sweep["name"], arguments)
        assert "ix_alerts_unresolved_expiry" in plan, plan

        earliest = await _prepared(conn, "min(alerts.expires_at)")
        assert earliest["generic_plans"] >= 1
        assert earliest["custom_plans"] == 0
        plan = await _explain(conn, earliest["name"], ", ".join(["'resolved'"] * earliest["arity"]))
        assert "ix_alerts_unresolved_expiry" in plan, plan
        assert "Seq Scan" not in plan, plan


async def test_the_settle_statement_is_driven_by_its_ids_in_a_generic_plan(
    engine: AsyncEngine,
) -> None:
    """Many records in flight: the lock of the batch's rows probes the primary key only,
    never the due index's every 'sending' entry."""
    statement = DirectStatement(lambda: settle_batch_statement(delivery_records))
    ids = await _ids(engine, 2)
    async with engine.connect() as conn:
        await _plan_generically(conn)
        compiled = statement.compiled(conn.dialect)
        rows = [_settlement(i) for i in ids]
        driver = await driver_connection_of(conn)
        settled = await driver.fetch(
            compiled.sql, *compiled.arguments(settle_arrays(rows, "router-1"))
        )
        assert sorted(r["delivery_id"] for r in settled) == ids

        settle = await _prepared(conn, "locked AS MATERIALIZED")
        assert settle["generic_plans"] == 1
        assert settle["custom_plans"] == 0
        # Only the ids and the owner matter to the lock; the rest are the new values.
        arguments = ["ARRAY['x']", "'router-1'"] + ["NULL"] * (settle["arity"] - 2)
        plan = await _explain(conn, settle["name"], ", ".join(arguments))
        assert "delivery_records_pkey" in plan, plan
        assert "ix_delivery_records_due" not in plan, plan


async def _ids(engine: AsyncEngine, n: int) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT delivery_id FROM delivery_records WHERE state = 'sending' "
                "ORDER BY delivery_id LIMIT :n"
            ),
            {"n": n},
        )
        return [r[0] for r in rows]


def _settlement(delivery_id: str) -> dict[str, Any]:
    return {
        "b_id": delivery_id,
        "b_state": "delivered",
        "b_at": NOW,
        "b_attempted": 1,
        "b_next": None,
        "b_error": None,
        "b_key": "webhook:spoc",
        "b_delivered": NOW,
        "b_segments": None,
    }


async def test_the_count_by_state_reads_unresolved_alerts_by_the_partial_index(
    engine: AsyncEngine,
) -> None:
    # No index names `state` (router_0007): the gauge's count finds the few open alerts by
    # the partial index, not by reading every alert's row; resolved ones are the total
    # less the rest.
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with engine.connect() as conn, conn.begin():
            counts = await SqlAlertRepository(
                AsyncSession(bind=conn), source="router"
            ).count_by_state()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert counts == {"delivered": ALERTS // 40, "resolved": ALERTS - ALERTS // 40}

    (count,) = [s for s in statements if "UNION ALL" in s]
    async with engine.connect() as conn:
        plan = "\n".join(row[0] for row in await conn.execute(sa.text(f"EXPLAIN {count}")))
    assert "ix_alerts_unresolved_expiry" in plan, plan
