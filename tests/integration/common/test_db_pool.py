"""The PostgreSQL pool without pre-ping: no round trip per checkout, no dead connection used.
A lone write's borrowed connection goes back a few loop turns after its answer (direct.py,
and db.py's `fetchrow_borrowed` and `fetchmany_borrowed`, intake's writes), off the
caller's path, and a pool of one still serves the next."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import (
    UnitOfWork,
    asyncpg_dsn,
    fetchmany_borrowed,
    fetchrow_borrowed,
    make_engine,
    make_session_factory,
)
from services.common.direct import DirectStatement, holds_connection
from services.common.settings import CommonSettings
from tests.support import infra

pytestmark = [pytest.mark.postgres]

_PID = DirectStatement(lambda: sa.select(sa.func.pg_backend_pid()))


@pytest.fixture
async def engine(
    postgres_url: str, make_settings: Callable[..., CommonSettings]
) -> AsyncIterator[AsyncEngine]:
    url = await infra.fresh_database_async(postgres_url)
    engine = make_engine(make_settings(database_url=url), "intake", pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()
        await infra.drop_database_async(url)


async def _backend_pid(engine: AsyncEngine) -> int:
    return (await _backend(engine))[0]


async def _backend(engine: AsyncEngine) -> tuple[int, Any]:
    """The backend's pid and the asyncpg connection that served one unit of work."""
    async with UnitOfWork(make_session_factory(engine)) as uow:
        pid = (await uow.session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        raw = await (await uow.session.connection()).get_raw_connection()
        driver = raw.driver_connection
        await uow.commit()
    return int(pid), driver


async def test_a_connection_the_server_closed_is_replaced_before_use(engine: AsyncEngine) -> None:
    first, pooled = await _backend(engine)
    # The server ends the pooled connection's backend, as a restart would.
    admin = await asyncpg.connect(asyncpg_dsn(engine.url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await admin.close()
    # Until this side saw the socket close (on a loaded machine the FIN may be read well
    # after the backend is gone): that is what the checkout looks at.
    deadline = asyncio.get_running_loop().time() + 30
    while not pooled.is_closed():
        assert asyncio.get_running_loop().time() < deadline, "the client never saw the close"
        await asyncio.sleep(0.01)
    # The next unit of work gets a fresh connection at checkout instead of failing.
    second = await _backend_pid(engine)
    assert second != first


async def test_a_transaction_costs_no_ping(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[Any] = []
    dialect = engine.sync_engine.dialect
    ping = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda conn: pings.append(conn) or ping(conn))
    await _backend_pid(engine)
    await _backend_pid(engine)  # a pooled connection, checked out again
    assert pings == []


async def _lone(engine: AsyncEngine) -> int:
    async with make_session_factory(engine)() as session, session.begin():
        row = await _PID.fetchrow(session, {}, lone=True)
        return int(row[0])


async def _given_back(engine: AsyncEngine) -> None:
    """Until the pool has its one connection back (a few loop turns, never a sleep)."""
    deadline = asyncio.get_running_loop().time() + 30
    while engine.pool.checkedout():  # type: ignore[attr-defined]
        assert asyncio.get_running_loop().time() < deadline, "never given back"
        await asyncio.sleep(0)
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]


async def test_the_borrowed_connection_goes_back_after_the_caller_went_on(
    engine: AsyncEngine,
) -> None:
    async with make_session_factory(engine)() as session, session.begin():
        await _PID.fetchrow(session, {}, lone=True)
        # A unit of work's transaction begun, no connection held: a borrowed one.
        assert not holds_connection(session)
        # The caller's next steps (its commit's effects) run before the pool's return.
        assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    await _given_back(engine)


async def test_a_pool_of_one_serves_lone_writes_back_to_back(engine: AsyncEngine) -> None:
    first = await _lone(engine)
    second = await asyncio.wait_for(_lone(engine), timeout=30)
    assert second == first  # the one pooled connection, given back in between


async def test_a_borrowed_row_goes_back_after_the_caller_went_on(engine: AsyncEngine) -> None:
    row = await fetchrow_borrowed(engine, "SELECT pg_backend_pid()", [])
    # Intake's next steps (its commit hands the outbox row to the relay, which writes the
    # produce request) run before the pool's return.
    assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    await _given_back(engine)
    again = await asyncio.wait_for(fetchrow_borrowed(engine, "SELECT pg_backend_pid()", []), 30)
    assert again[0] == row[0]  # the pool of one served both


async def test_borrowed_rows_in_one_round_go_back_after_the_caller_went_on(
    engine: AsyncEngine,
) -> None:
    rows = await fetchmany_borrowed(engine, "SELECT $1::int + 1", [[1], [2]])
    assert [r[0] for r in rows] == [2, 3]
    assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    await _given_back(engine)


async def test_a_failed_borrowed_write_gives_its_connection_back_at_once(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(asyncpg.PostgresError):
        await fetchrow_borrowed(engine, "SELECT 1 / $1::int", [0])
    # Nothing of the caller's to run first: back before the error reached it.
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
