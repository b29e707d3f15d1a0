"""Every statement an engine sends, whichever way it goes: through SQLAlchemy, or
straight to asyncpg on one of the engine's pooled connections (services/common/direct.py
and the relay's settling), which SQLAlchemy's events never see."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["record_statements", "round_trips"]

_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")
# What asyncpg sends by itself the first time a connection meets a type it has no codec
# for yet (an array parameter, say): its type introspection, with JIT off around it.
_ASYNCPG_INTROSPECTION = (
    "SELECT current_setting('jit')",
    "SELECT set_config('jit'",
    "WITH RECURSIVE typeinfo_tree",
)


def record_statements(engine: AsyncEngine, *, width: int = 80) -> list[str]:
    """From now on, every statement `engine` sends, white space folded and cut at `width`.

    BEGIN, COMMIT and ROLLBACK are left out (SQLite's BEGIN IMMEDIATE goes through the
    cursor; on PostgreSQL SQLAlchemy's adapter sends them to asyncpg, which reports
    them), and so is asyncpg's one-time type introspection on a connection. asyncpg
    reports a query on the loop turn after it answered. The listeners live as long as
    the engine.
    """
    seen: list[str] = []
    logged: set[int] = set()

    def through_sqlalchemy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(_TRANSACTION_CONTROL):  # SQLite's BEGIN
            seen.append(" ".join(statement.split())[:width])

    def direct(record: Any) -> None:
        query = " ".join(record.query.split())
        control = query.upper().startswith(_TRANSACTION_CONTROL)
        if not (control or query.startswith(_ASYNCPG_INTROSPECTION)):
            seen.append(query[:width])

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if engine.dialect.driver == "asyncpg" and id(driver) not in logged:
            # SQLAlchemy's own statements run as prepared statements, which asyncpg's
            # query logger does not report: nothing is counted twice.
            driver.add_query_logger(direct)
            logged.add(id(driver))

    event.listen(engine.sync_engine, "before_cursor_execute", through_sqlalchemy)
    event.listen(engine.sync_engine.pool, "checkout", checkout)
    return seen


@contextmanager
def round_trips(engine: AsyncEngine) -> Iterator[list[str]]:
    """The first word of every query asyncpg sends on any of the engine's connections
    (BEGIN and COMMIT included), from now on; read after a loop turn (asyncpg reports a
    query on the turn after it answered) and before the block ends. asyncpg's own type
    introspection, the first time a connection meets an array parameter, is left out."""
    sent: list[str] = []
    logged: dict[int, Any] = {}

    def log(record: Any) -> None:
        query = " ".join(record.query.split())
        if not query.startswith(_ASYNCPG_INTROSPECTION):
            sent.append(query.split()[0].upper().rstrip(";"))

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if id(driver) not in logged:
            driver.add_query_logger(log)
            logged[id(driver)] = driver

    pool = engine.sync_engine.pool
    event.listen(pool, "checkout", checkout)
    try:
        yield sent
    finally:
        event.remove(pool, "checkout", checkout)
        for driver in logged.values():
            driver.remove_query_logger(log)
