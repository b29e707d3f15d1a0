"""Router's delivery records are indexed while in flight only (router_0009).

The claim's indexes hold pending (`ix_delivery_records_due`) and sending
(`ix_delivery_records_leased`) records, the aggregate index pending ones: a record's last
update writes no entry into any of them. The migration goes up and down on both back
ends with rows kept; on PostgreSQL the finished records are in none of the three indexes
(the index's own tuple count after a VACUUM), and the claims, the next-due read and the
cancellation still read an index in their generic plans (as in
test_router_generic_plans.py: only the plan's kind and its index are asserted).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from services.common.db import make_engine
from services.common.delivery import SqlDeliveryStore
from services.common.delivery.claim_query import (
    ClaimAsk,
    claim_arguments,
    claim_statement,
    claim_update,
)
from services.common.delivery.direct_rounds import next_due_statement
from services.common.delivery.records import state_is
from services.common.direct import DirectStatement
from services.common.migrations import alembic_config, upgrade
from services.router.config import RouterSettings
from services.router.tables import delivery_records
from tests.integration.router.router_support import migrated_engine

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
FINISHED = 8_000  # delivered, failed, skipped, cancelled
IN_FLIGHT = 200  # being sent
PENDING = 100  # waiting for their first attempt or a retry
ALERT = "00000000-0000-4000-8000-00000000a1e7"  # the aggregate of the pending records

# Each index of router's delivery records at head: (key columns, the state it covers).
HEAD = {
    "ix_delivery_records_due": (["next_attempt_at"], "pending"),
    "ix_delivery_records_leased": (["next_attempt_at"], "sending"),
    "ix_delivery_records_aggregate": (["aggregate_id"], "pending"),
}
# ... and before router_0009: whole indexes.
BEFORE = {
    "ix_delivery_records_due": (["state", "next_attempt_at"], None),
    "ix_delivery_records_aggregate": (["aggregate_id", "state"], None),
}


def _indexes(connection: Connection) -> dict[str, tuple[list[str], str | None]]:
    """The table's indexes as (key columns, the state of a partial index's predicate)."""
    found: dict[str, tuple[list[str], str | None]] = {}
    for index in sa.inspect(connection).get_indexes("delivery_records"):
        options = index.get("dialect_options", {})
        where = options.get("postgresql_where") or options.get("sqlite_where")
        state = None
        if where is not None:
            words = str(where).replace("(", " ").replace(")", " ").replace("::text", " ")
            state = words.split("'")[1]
            assert "state" in words, where
        found[str(index["name"])] = ([str(c) for c in index["column_names"]], state)
    return found


def _rows(connection: Connection) -> list[tuple[str, str]]:
    t = delivery_records
    query = sa.select(t.c.delivery_id, t.c.state).order_by(t.c.delivery_id)
    return [(row.delivery_id, row.state) for row in connection.execute(query)]


def _downgrade(connection: Connection, revision: str) -> None:
    config = alembic_config("router")
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_router_0009_indexes_records_in_flight_and_comes_back_down(
    database_url: str | None, make_settings: Callable[..., Any]
) -> None:
    settings = make_settings(RouterSettings, database_url=database_url)
    await upgrade(settings, "router", "router_0008")
    engine = make_engine(settings, "router")
    try:
        async with engine.begin() as conn:
            assert _without_key(await conn.run_sync(_indexes)) == BEFORE
            await conn.execute(
                sa.insert(delivery_records), [_row(1, "pending"), _row(2, "delivered")]
            )
        await upgrade(settings, "router")
        async with engine.connect() as conn:
            assert _without_key(await conn.run_sync(_indexes)) == HEAD
            kept = await conn.run_sync(_rows)
            assert [state for _, state in kept] == ["pending", "delivered"]
            await conn.run_sync(_downgrade, "router_0008")
            await conn.commit()
            assert _without_key(await conn.run_sync(_indexes)) == BEFORE
            assert await conn.run_sync(_rows) == kept
    finally:
        await engine.dispose()


def _without_key(indexes: dict[str, Any]) -> dict[str, Any]:
    """The secondary indexes (SQLite's reflection never lists the primary key's)."""
    return {name: shape for name, shape in indexes.items() if not name.endswith("_pkey")}


def _row(n: int, state: str, *, aggregate: str | None = None) -> dict[str, Any]:
    sending = state == "sending"
    return {
        "delivery_id": str(uuid.UUID(int=n)),
        "aggregate_id": aggregate or str(uuid.UUID(int=10**9 + n)),
        "aggregate_version": 1,
        "recipient_id": "spoc",
        "channel": "webhook",
        "purpose": "alert",
        "language": "en",
        "context": {"text": "x" * 1_000},  # about the size of a real one
        "state": state,
        "attempts": 0,
        "next_attempt_at": NOW - timedelta(seconds=n % 60),
        "give_up_at": NOW + timedelta(hours=1),
        "claimed_by": "router-1" if sending else None,
        "claimed_until": NOW + timedelta(seconds=30) if sending else None,
        "created_at": NOW,
        "updated_at": NOW,
    }


@pytest.fixture
async def engine(pg_database: str, make_settings: Callable[..., Any]) -> AsyncIterator[AsyncEngine]:
    """Router's engine on a migrated router schema: thousands of finished records, a few
    hundred in flight and pending (those of one alert), written as the engine writes
    them: inserted pending or sending, then updated to their last state; vacuumed."""
    async with migrated_engine(pg_database, make_settings) as engine:
        finished = ("delivered", "failed", "skipped", "cancelled")
        rows = [_row(n, "sending") for n in range(FINISHED + IN_FLIGHT)]
        rows += [_row(FINISHED + IN_FLIGHT + n, "pending", aggregate=ALERT) for n in range(PENDING)]
        async with engine.begin() as conn:
            await conn.execute(sa.insert(delivery_records), rows)
            t = delivery_records
            for n, state in enumerate(finished):
                ids = [r["delivery_id"] for r in rows[n:FINISHED:4]]
                await conn.execute(sa.update(t).where(t.c.delivery_id.in_(ids)).values(state=state))
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text("VACUUM ANALYZE delivery_records"))
        yield engine


pg = pytest.mark.postgres


@pg
async def test_finished_records_are_in_none_of_the_in_flight_indexes(engine: AsyncEngine) -> None:
    # VACUUM leaves each index's reltuples at the entries it holds.
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT c.relname, c.reltuples::bigint AS entries FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = 'delivery_records'::regclass"
            )
        )
        entries = {row.relname: row.entries for row in rows}
    assert entries == {
        "delivery_records_pkey": FINISHED + IN_FLIGHT + PENDING,
        "ix_delivery_records_due": PENDING,
        "ix_delivery_records_leased": IN_FLIGHT,
        "ix_delivery_records_aggregate": PENDING,
    }


async def _plan_generically(conn: AsyncConnection) -> Any:
    driver = (await conn.get_raw_connection()).driver_connection
    await driver.execute("SET plan_cache_mode = force_generic_plan")
    return driver


# A value of each parameter type for EXPLAIN EXECUTE (the plan is the generic one anyway).
_VALUES = {
    "timestamp with time zone": f"'{NOW.isoformat()}'::timestamptz",
    "character varying": "'x'",
    "integer": "10",
    "character varying[]": "ARRAY[]::varchar[]",
    "integer[]": "ARRAY[]::integer[]",
}


async def _generic_plan(conn: AsyncConnection, marker: str) -> str:
    """EXPLAIN of the connection's one prepared statement holding `marker`, which must
    have run with its generic plan."""
    rows = await conn.execute(
        sa.text(
            "SELECT name, generic_plans, custom_plans, parameter_types::text[] AS types "
            "FROM pg_prepared_statements WHERE strpos(statement, :marker) > 0"
        ),
        {"marker": marker},
    )
    (found,) = rows.mappings().all()
    assert found["generic_plans"] >= 1, found
    assert found["custom_plans"] == 0, found
    values = ", ".join(_VALUES[kind] for kind in found["types"])
    driver = (await conn.get_raw_connection()).driver_connection
    plan = await driver.fetch(
        f'EXPLAIN EXECUTE "{found["name"]}"' + (f"({values})" if values else "")
    )
    return "\n".join(row[0] for row in plan)


@pg
@pytest.mark.parametrize(
    ("lapsed", "index"), [(False, "ix_delivery_records_due"), (True, "ix_delivery_records_leased")]
)
async def test_each_claim_ranges_over_its_in_flight_index_in_a_generic_plan(
    engine: AsyncEngine, lapsed: bool, index: str
) -> None:
    statement = DirectStatement(partial(claim_statement, delivery_records, lapsed=lapsed))
    later = NOW + timedelta(minutes=5)  # every lease has run out, every record is due
    ask = ClaimAsk(
        lapsed=lapsed, now=later, owner="router-2", lease_until=later + timedelta(seconds=30),
        want=5, scan=5, excluded=(), room={}, default_room=None,
    )  # fmt: skip
    async with engine.connect() as conn:
        driver = await _plan_generically(conn)
        compiled = statement.compiled(conn.dialect)
        taken = await driver.fetch(compiled.sql, *compiled.arguments(claim_arguments(ask)))
        assert len(taken) == 5
        assert {row["state"] for row in taken} == {"sending"}
        plan = await _generic_plan(conn, "LIMIT $")
    assert index in plan, plan
    assert "Seq Scan" not in plan, plan


@dataclass
class _Tx:
    """The engine's transaction as far as `next_due` needs it: a session."""

    session: AsyncSession
    effects: list[Any] = field(default_factory=list)

    def after_commit(self, effect: Any) -> None:
        self.effects.append(effect)

    async def commit(self) -> None:
        await self.session.commit()


@pg
async def test_the_next_due_read_and_the_cancel_keep_their_indexes_in_a_generic_plan(
    engine: AsyncEngine,
) -> None:
    store = SqlDeliveryStore(sessions=async_sessionmaker(bind=engine), table=delivery_records)
    async with engine.connect() as conn:
        await _plan_generically(conn)
        session = AsyncSession(bind=conn)
        async with session.begin():
            due = await store.next_due(_Tx(session))
            cancelled = await store.cancel(session, aggregate_id=uuid.UUID(ALERT), now=NOW)
            next_due = await _generic_plan(conn, "min(delivery_records.next_attempt_at)")
            cancel = await _generic_plan(conn, "delivery_records.aggregate_id = $")
            await session.rollback()
    assert due == NOW - timedelta(seconds=59)
    assert cancelled == PENDING
    assert "ix_delivery_records_due" in next_due, next_due
    assert "ix_delivery_records_leased" in next_due, next_due
    assert "Seq Scan" not in next_due, next_due
    assert "ix_delivery_records_aggregate" in cancel, cancel
    assert "Seq Scan" not in cancel, cancel


def _sqlite_statements() -> dict[str, Any]:
    """The engine's SQLAlchemy statements that must read an in-flight index on SQLite."""
    t = delivery_records
    ask = partial(
        ClaimAsk, now=NOW, owner="router-1", lease_until=NOW, want=5, scan=20,
        excluded=(), room={}, default_room=None,
    )  # fmt: skip
    return {
        "claim": claim_update(t, t.alias("candidate"), ask(lapsed=False)),
        "lapsed claim": claim_update(t, t.alias("candidate"), ask(lapsed=True)),
        "next due": next_due_statement(t),
        "cancel": sa.update(t)
        .where(t.c.aggregate_id == ALERT, state_is(t.c.state, "pending"))
        .values(state="cancelled"),
    }


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("claim", ["ix_delivery_records_due"]),
        ("lapsed claim", ["ix_delivery_records_leased"]),
        ("next due", ["ix_delivery_records_due", "ix_delivery_records_leased"]),
        ("cancel", ["ix_delivery_records_aggregate"]),
    ],
)
async def test_sqlite_reads_each_in_flight_index_as_written(
    make_settings: Callable[..., Any], name: str, index: list[str]
) -> None:
    """SQLite uses a partial index only when the query names its predicate's term as
    written (`state_is`); a bound state, or `state IN (...)`, would read the table."""
    settings: RouterSettings = make_settings(RouterSettings)
    await upgrade(settings, "router")
    engine = make_engine(settings, "router")
    try:
        async with engine.connect() as conn:
            compiled = _sqlite_statements()[name].compile(dialect=conn.dialect)
            rows = await conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.params.values())
            )
            plan = "\n".join(str(row[-1]) for row in rows)
    finally:
        await engine.dispose()
    for wanted in index:
        assert f"INDEX {wanted}" in plan, plan
    # No read of the whole table (a SCAN of a table, not of one of its indexes).
    reads = ("SCAN delivery_records", "SCAN candidate")
    tables = [line for line in plan.splitlines() if line.startswith(reads)]
    assert all("USING" in line for line in tables), plan
