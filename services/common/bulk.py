"""Many rows in one INSERT whose compiled form never changes.

A multi-row `VALUES` INSERT is one round trip, but SQLAlchemy builds its cache key from
every bound value and compiles it anew for each row count: for a batch of 100 timeline
entries that is most of the CPU the write costs (profiled in an escalation burst). On
PostgreSQL the rows go instead as one array per column through `unnest`, in a statement
built once per table and column list, so SQLAlchemy compiles it once and asyncpg prepares
it once; rows keep the order given (`WITH ORDINALITY`), so serial ids follow it. Elsewhere
(SQLite: in-process, no round trip to save) they go as an executemany of the one-row
INSERT, also compiled once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["column_arrays", "insert_rows", "unnest_insert"]

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


async def insert_rows(
    session: AsyncSession,
    table: sa.Table,
    rows: Sequence[Mapping[str, object]],
    *,
    skip_conflicts: bool = False,
    wrap: str = "{insert}",
) -> None:
    """Insert `rows` (all with the same keys) in one statement, in the order given.

    `skip_conflicts`: a row that collides with a unique key is left out (`ON CONFLICT DO
    NOTHING`), so inserting is idempotent. `wrap`: on PostgreSQL, a constant statement
    around the INSERT (`{insert}`), e.g. a CTE that also notifies listeners.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    if any(tuple(row) != columns for row in rows):
        raise ValueError(f"rows for {table.name} must all name the same columns, in order")
    if session.get_bind().dialect.name == "postgresql":
        statement = unnest_insert(table, columns, skip_conflicts, wrap)
        await session.execute(statement, column_arrays(columns, rows))
    else:
        await session.execute(_one_row_insert(table, skip_conflicts), list(rows))


def _unnest_insert_sql(table: sa.Table, columns: Sequence[str], *, skip_conflicts: bool) -> str:
    """The PostgreSQL INSERT of one array per column (`:<column>` parameters), as text."""
    names = ", ".join(_quoted(name) for name in columns)
    arrays = ", ".join(
        f"CAST(:{name} AS {table.c[name].type.compile(dialect=_PG)}[])" for name in columns
    )
    conflict = " ON CONFLICT DO NOTHING" if skip_conflicts else ""
    # Identifiers come from the table's metadata, quoted by the dialect; values are bound.
    return (
        f"INSERT INTO {_quoted(table.name)} ({names}) "  # noqa: S608
        f"SELECT {names} FROM unnest({arrays}) WITH ORDINALITY AS r({names}, _n) "
        f"ORDER BY _n{conflict}"
    )


@cache
def unnest_insert(
    table: sa.Table, columns: tuple[str, ...], skip_conflicts: bool, wrap: str = "{insert}"
) -> sa.TextClause:
    """PostgreSQL: the INSERT of `columns` as one array per column (`column_arrays`),
    built and typed once; `wrap` as in `insert_rows` (e.g. `{insert} RETURNING ...`)."""
    sql = wrap.format(insert=_unnest_insert_sql(table, columns, skip_conflicts=skip_conflicts))
    # Typed parameters: SQLAlchemy then applies each column's own bind processing (JSON
    # serialised, aware timestamps) to every element.
    return sa.text(sql).bindparams(
        *(sa.bindparam(name, type_=postgresql.ARRAY(table.c[name].type)) for name in columns)
    )


@cache
def _one_row_insert(table: sa.Table, skip_conflicts: bool) -> sa.Insert:
    if skip_conflicts:
        return sqlite.insert(table).on_conflict_do_nothing()
    return sa.insert(table)


def column_arrays(
    columns: Sequence[str], rows: Sequence[Mapping[str, object]]
) -> dict[str, object]:
    """`rows` as `unnest_insert` takes them: one list per column."""
    return {name: [row[name] for row in rows] for name in columns}


def _quoted(name: str) -> str:
    return str(_PG.identifier_preparer.quote(name))
