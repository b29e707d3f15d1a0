"""The embedded SQLite default through aiosqlite, one hand-off to its thread a statement.

aiosqlite runs each connection's sqlite3 calls on a thread of its own: every call is
queued to that thread, which wakes, runs it and wakes the event loop with the result.
SQLAlchemy's aiosqlite adapter makes one such call for each DB-API step of a statement:
the cursor's creation, its execute, its fetchall when it answers rows, and its close,
three or four hand-offs a statement (BEGIN IMMEDIATE three, for its cursor). Profiled on
the SQLite default at 50 notices a second, intake and router each woke ~100 times a
notice and a third of their CPU was aiosqlite's queueing and its thread
(docs/performance.md, "The SQLite default's hand-offs").

Here a statement's cursor is made, executed, read to the end and closed in one function
run on the connection's thread: one hand-off a statement. What SQLAlchemy reads from the
cursor afterwards (the description, the rows, rowcount, lastrowid) was taken on that
thread before the cursor closed. Everything else is SQLAlchemy's and aiosqlite's own: the
connection, its transactions (`commit`, `rollback`), errors (raised as aiosqlite raises
them, wrapped by SQLAlchemy as before), server-side cursors, and terminate.

`make_engine` passes `module=aiosqlite_dbapi()` for a SQLite URL; the URL stays
`sqlite+aiosqlite`. It relies on two names that are not public API of pinned versions:
aiosqlite's `Connection._execute` (queue a function for the connection's thread, as
aiosqlite's own methods do) and SQLAlchemy's adapter classes for aiosqlite, which it
subclasses; tests/unit/test_sqlite_driver.py fails if either stops behaving so.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

__all__ = ["aiosqlite_dbapi"]


@dataclass(frozen=True, slots=True)
class _Ran:
    """What a statement left on its cursor, taken before the cursor closed."""

    description: Any
    rows: list[Any]
    rowcount: int
    lastrowid: int | None


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Ran:
    """On the connection's thread: the statement run on a cursor of its own, read whole."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description is not None else []
        return _Ran(description, rows, cursor.rowcount, cursor.lastrowid)
    finally:
        cursor.close()


class _OneHandOffCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's aiosqlite cursor, each execution one call on the connection's thread.

    No sqlite3 cursor outlives a statement: there is nothing to create before it or to
    close after it, so neither costs a hand-off.
    """

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # The base class creates an aiosqlite cursor here (a hand-off); not called.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._rows = collections.deque()
        self._soft_closed_memoized = EMPTY_DICT
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        """Nothing to close: the statement's cursor closed on the connection's thread."""

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._run(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._run(operation, seq_of_parameters, many=True)

    async def _run(self, operation: str, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        # aiosqlite's own door to the connection's thread (queued in order, as every
        # aiosqlite call is), typed here: aiosqlite leaves it untyped.
        queue = cast(Callable[..., Awaitable[_Ran]], connection._execute)
        async with self._adapt_connection._execute_mutex:
            ran = await queue(_run, connection._conn, operation, parameters, many)
        self._description = ran.description
        self._rows = collections.deque(ran.rows)
        self._rowcount = ran.rowcount
        self._lastrowid = ran.lastrowid

    def setinputsizes(self, *inputsizes: Any) -> None:
        """sqlite3 ignores input sizes (as the DB-API allows); so does this."""


class _OneHandOffConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    _cursor_cls = _OneHandOffCursor


class _OneHandOffDbapi(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DB-API module whose connections use `_OneHandOffCursor`."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _OneHandOffConnection(self, adapted._connection)


def aiosqlite_dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DB-API module for `create_async_engine(..., module=...)` on a SQLite URL."""
    return _OneHandOffDbapi(aiosqlite, sqlite3)
