"""The bench's vacuum after a long warm-up, on a real PostgreSQL: the run's database is
vacuumed (every table, as the bench's own superuser) and the wait reports how it went."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from benchmarks.hot_path.infra import Infra, vacuum_and_settle


async def test_the_runs_database_is_vacuumed_and_autovacuum_waited_for(
    pg_database: str, tmp_path: Path
) -> None:
    dsn = make_url(pg_database).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(dsn)
    try:
        # Dead rows, as a warm-up's deleted outbox rows leave them.
        await conn.execute("CREATE TABLE warm (id int PRIMARY KEY, body text)")
        await conn.execute(
            "INSERT INTO warm SELECT i, repeat('x', 200) FROM generate_series(1, 2000) i"
        )
        await conn.execute("DELETE FROM warm")
        assert (
            await conn.fetchval(
                "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'warm'"
            )
            is None
        )

        infra = Infra(bootstrap="", database_url=pg_database, own=False, state_dir=tmp_path)
        settled = await vacuum_and_settle(infra, timeout_s=60.0, poll_s=0.05)

        assert (
            await conn.fetchval(
                "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'warm'"
            )
            is not None
        )
    finally:
        await conn.close()
    assert settled["vacuum_s"] >= 0
    assert isinstance(settled["autovacuum_quiet"], bool)
