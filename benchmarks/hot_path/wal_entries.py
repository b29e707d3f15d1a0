"""Index entries a phase wrote, per index, counted from the WAL (pg_walinspect).

Why: pg_writes.py estimated a table's entries as (inserts + non-HOT updates) x its
indexes, which a partial index breaks: a row outside its predicate gets no entry (router's
delivery records keep their claim indexes over records in flight only). Every B-tree leaf
insert is one WAL record naming the index's file: INSERT_LEAF, INSERT_POST (into a
deduplicated posting list) or a leaf page split carrying the new tuple (SPLIT_L,
SPLIT_R). Counted between the phase's two WAL positions, grouped by file, and named in
the services' database.

Optional: pg_walinspect is a contrib module of PostgreSQL 15; where it cannot be created,
or the phase's WAL was already recycled, the caller keeps the estimate.
"""

from __future__ import annotations

from typing import Any

import asyncpg

__all__ = ["entries_by_index", "wal_position"]

_RECORDS = (
    "SELECT substring(block_ref from 'rel [0-9]+/([0-9]+)/')::oid AS db,"
    " substring(block_ref from 'rel [0-9]+/[0-9]+/([0-9]+)')::oid AS node, count(*) AS n"
    " FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)"
    " WHERE resource_manager = 'Btree'"
    " AND record_type IN ('INSERT_LEAF', 'INSERT_POST', 'SPLIT_L', 'SPLIT_R')"
    " GROUP BY 1, 2"
)
_NAMES = (
    "SELECT pg_relation_filenode(i.indexrelid)::oid AS node,"
    " n.nspname || '.' || t.relname AS tab, c.relname AS name"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
)


async def wal_position(admin_dsn: str) -> str | None:
    """The current WAL position, with pg_walinspect created (None: not available)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        return str(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()


async def entries_by_index(
    admin_dsn: str, services_dsn: str, start: str
) -> dict[tuple[str, str], int] | None:
    """{(table, index): entries written since `start`} in the services' database."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        end = await admin.fetchval("SELECT pg_current_wal_flush_lsn()::text")
        rows: list[Any] = await admin.fetch(_RECORDS, start, end)
    except asyncpg.PostgresError:
        return None
    finally:
        await admin.close()
    conn = await asyncpg.connect(services_dsn)
    try:
        db = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
        names = {row["node"]: (row["tab"], row["name"]) for row in await conn.fetch(_NAMES)}
    finally:
        await conn.close()
    found: dict[tuple[str, str], int] = {}
    for row in rows:
        name = names.get(row["node"]) if row["db"] == db else None
        if name is not None:
            found[name] = found.get(name, 0) + int(row["n"])
    return found
