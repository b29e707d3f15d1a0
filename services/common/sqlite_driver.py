"""The embedded SQLite default through aiosqlite, one hand-off to its thread a statement.

aiosqlite runs each connection's sqlite3 calls on a thread of its own: every call is
queued to that thread, which wakes, runs it and wakes the event loop with the result.
SQLAlchemy's aiosqlite adapter makes one such call for each DB-API step of a statement:
the cursor's creation, its execute, its fetchall when it answers rows, and its close,
three or four hand-offs a statement (BEGIN IMMEDIATE three, for its cursor). Profiled on
the SQLite default at 50 notices a second, intake and router each woke ~100 times a
notice, and a third of their samples were in aiosqlite: its queueing, and its thread,
where SQLite's own work runs too (docs/performance.md, "The SQLite default's hand-offs").

Here a statement's cursor is made, executed, read to the end and closed in one function
run on the connection's thread: one hand-off a statement. What SQLAlchemy reads from the
cursor afterwards (the description, the rows, rowcount, lastrowid) was taken on that
thread before the cursor closed. A transaction's BEGIN goes in its first statement's
hand-off, and a commit or rollback with no transaction open (the pool's rollback of every
connection given back, after its commit) is not sent: a one-statement transaction is two
hand-offs, not eight. Everything else is SQLAlchemy's and aiosqlite's own: the connection,
its commits and rollbacks, errors (raised as aiosqlite raises them, wrapped by SQLAlchemy
as before), server-side cursors, and terminate.

`make_engine` passes `module=aiosqlite_dbapi()` for a SQLite URL; the URL stays
`sqlite+aiosqlite`. It relies on two names that are not public API of pinned versions:
aiosqlite's `Connection._execute` (queue a function for the connection's thread, as
aiosqlite's own methods do) and SQLAlchemy's adapter classes for aiosqlite, which it
subclasses; tests/unit/common/test_sqlite_driver.py fails if either stops behaving so.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection, AsyncIODBAPIConnection
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


# The statements that open a transaction, as `defer_begin` recognises them.
_BEGINS = frozenset(
    f"BEGIN{mode}{word}"
    for mode in ("", " DEFERRED", " IMMEDIATE", " EXCLUSIVE")
    for word in ("", " TRANSACTION")
)


def _run(
    connection: sqlite3.Connection,
    begin: str | None,
    operation: str,
    parameters: Any,
    many: bool,
) -> _Ran:
    """On the connection's thread: the transaction's deferred `begin` if any, then the
    statement run on a cursor of its own, read whole."""
    if begin is not None:
        connection.execute(begin).close()
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
        adapted = cast(_OneHandOffConnection, self._adapt_connection)
        if not many and adapted.defer_begin(operation, parameters):
            self._description, self._rowcount, self._lastrowid = None, -1, None
            self._rows.clear()
            return
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        # aiosqlite's own door to the connection's thread (queued in order, as every
        # aiosqlite call is), typed here: aiosqlite leaves it untyped.
        queue = cast(Callable[..., Awaitable[_Ran]], connection._execute)
        async with adapted._execute_mutex:
            begin = adapted.take_begin()
            ran = await queue(_run, connection._conn, begin, operation, parameters, many)
        self._description = ran.description
        self._rows = collections.deque(ran.rows)
        self._rowcount = ran.rowcount
        self._lastrowid = ran.lastrowid

    def setinputsizes(self, *inputsizes: Any) -> None:
        """sqlite3 ignores input sizes (as the DB-API allows); so does this."""


class _OneHandOffConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection with `_OneHandOffCursor`, a deferred BEGIN, and
    no hand-off for a commit or rollback with no transaction open.

    A BEGIN is sent with the transaction's first statement, in its hand-off, ahead of it:
    the lock BEGIN IMMEDIATE takes is still taken before any statement of the transaction
    runs, and a BEGIN that fails (SQLite busy past its timeout) fails that statement. A
    transaction that ends before any statement never reaches SQLite. SQLAlchemy's pool
    rolls back every connection given back to it, most after their commit: with nothing
    open (sqlite3's own `in_transaction`) that rollback, like such a commit, does nothing
    and is not sent.
    """

    __slots__ = ("_begin",)

    _cursor_cls = _OneHandOffCursor

    def __init__(self, dbapi: Any, connection: AsyncIODBAPIConnection) -> None:
        super().__init__(dbapi, connection)
        self._begin: str | None = None

    def defer_begin(self, operation: str, parameters: Any) -> bool:
        """Keep `operation` for the next statement if it is a BEGIN (and none is kept)."""
        if self._begin is not None or parameters or operation.strip().upper() not in _BEGINS:
            return False
        self._begin = operation
        return True

    def take_begin(self) -> str | None:
        """The deferred BEGIN, for the statement about to be sent; none kept after it."""
        begin, self._begin = self._begin, None
        return begin

    def _nothing_open(self) -> bool:
        """Whether no transaction is open: none began, or only a deferred BEGIN (dropped)."""
        if self.take_begin() is not None:
            return True
        raw = self._connection._connection
        # None once closed: the base class decides what a closed connection does.
        return raw is not None and not raw.in_transaction

    def commit(self) -> None:
        if not self._nothing_open():
            super().commit()

    def rollback(self) -> None:
        if not self._nothing_open():
            super().rollback()


class _OneHandOffDbapi(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DB-API module whose connections use `_OneHandOffCursor`."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _OneHandOffConnection(self, adapted._connection)


def aiosqlite_dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DB-API module for `create_async_engine(..., module=...)` on a SQLite URL."""
    return _OneHandOffDbapi(aiosqlite, sqlite3)
