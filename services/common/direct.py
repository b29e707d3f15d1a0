"""Hot statements sent straight to asyncpg, inside the unit of work's transaction.

Why: profiled on intake's submission and router's notice path, SQLAlchemy's
per-execution work (the ORM execute path, the statement's cache key, bind and result
processing, its asyncpg adapter's cursor) was a third or more of the CPU of a
one-statement transaction. The statements here are still built with SQLAlchemy (Core or
a typed `text()`), but once: `DirectStatement` compiles its statement for the
connection's dialect on first use (with the casts the asyncpg dialect renders) and keeps
the SQL text, the order of its `$n` parameters and their bind processors. Each execution
then only orders the values and hands them to asyncpg, whose own cache keeps the
prepared statement per connection.

Only for PostgreSQL (callers keep their SQLAlchemy path for SQLite), and only for
statements whose results are plain columns (no result type processing is applied).
`driver_connection` first makes sure SQLAlchemy's transaction on the session has begun
(its asyncpg adapter sends BEGIN lazily, before the first statement), so everything
sent here commits or rolls back with the unit of work.

A lone write (`fetchrow(..., lone=True)`) is a statement that is the whole of its unit
of work's writes, sent before anything else. It goes without BEGIN, and PostgreSQL runs
it as a transaction of its own: as atomic as inside BEGIN/COMMIT, durable when it
answers, and the unit of work's commit then has nothing to send (intake's plain
submission: two round trips of three fewer). When the unit of work already began (a
lock or another write came first) the statement joins that transaction as usual.

A run of one statement's executions that is the whole write (`fetch_each_borrowed`,
router's run of openings with their inbox claims) goes the same way: pipelined with one
Sync and no BEGIN, PostgreSQL runs them as one implicit transaction.

A lone write whose session holds no connection yet does not give it one: it borrows a
connection from the engine's pool for the one statement and returns it a few loop turns
later, off the caller's path (`_fetch_borrowed`). Profiled at 64 clients, the session's
connection set-up and teardown around that statement (its transaction state, the engine
`Connection`, the commit and close passing through them) cost more CPU than the
statement's own Python.
The session still commits (nothing to send), so its after-commit hooks, the outbox
hand-over among them, run as before; a later statement of the same unit of work (the
reads of a retry) checks out a connection of its own, in a snapshot that sees the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.util import greenlet_spawn

__all__ = [
    "DirectStatement",
    "asyncpg_unreachable",
    "driver_connection",
    "fetch_each_borrowed",
    "give_back_later",
    "holds_connection",
    "is_postgres_session",
]

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]
    processors: tuple[_Processor, ...]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional arguments, in `$n` order, processed as SQLAlchemy would."""
        arguments = []
        for name, process in zip(self.names, self.processors, strict=True):
            value = values[name] if name in values else self.defaults[name]
            arguments.append(process(value) if process is not None and value is not None else value)
        return arguments


class DirectStatement:
    """A statement built once (by `build`) and compiled once per dialect."""

    def __init__(self, build: Callable[[], sa.Executable]) -> None:
        self._build = build
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        """The SQL text, parameter order and processors for `dialect` (cached)."""
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self._build().compile(dialect=dialect)  # type: ignore[attr-defined]
            names = tuple(compiled.positiontup or ())
            found = _Compiled(
                sql=str(compiled),
                names=names,
                # The values of the statement's own literals (LIMIT 1, the NOTIFY payload).
                defaults={
                    name: compiled.binds[name].effective_value
                    for name in names
                    if not compiled.binds[name].required
                },
                processors=tuple(_processor(compiled.binds[name].type, dialect) for name in names),
            )
            self._compiled[dialect.name] = found
        return found

    async def fetchrow(
        self, session: AsyncSession, values: Mapping[str, Any], *, lone: bool = False
    ) -> Any:
        """Run it in the session's transaction; the first row (an asyncpg Record) or None.

        `lone`: the caller's whole write; with no transaction begun yet it commits by itself.
        """
        bind = session.get_bind()
        compiled = self.compiled(bind.dialect)
        if lone and not holds_connection(session):
            return await _fetch_borrowed(bind, compiled.sql, compiled.arguments(values))
        driver = await driver_connection(session, begin=not lone)
        return await driver.fetchrow(compiled.sql, *compiled.arguments(values))

    async def fetchrow_alone(self, engine: AsyncEngine, values: Mapping[str, Any]) -> Any:
        """Run it by itself, autocommitted, on a connection of `engine`'s pool (no session:
        for a statement that is a whole transaction, such as the relay's settling)."""
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            compiled = self.compiled(engine.dialect)
            return await driver.fetchrow(compiled.sql, *compiled.arguments(values))

    async def fetch_alone(self, engine: AsyncEngine, values: Mapping[str, Any]) -> list[Any]:
        """As `fetchrow_alone`, every row (asyncpg Records): a whole transaction of one
        statement on a pooled connection, with no session around it."""
        async with engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            compiled = self.compiled(engine.dialect)
            rows: list[Any] = await driver.fetch(compiled.sql, *compiled.arguments(values))
            return rows

    async def fetch(self, session: AsyncSession, values: Mapping[str, Any]) -> list[Any]:
        """Run it in the session's transaction; every row (asyncpg Records)."""
        driver = await driver_connection(session)
        compiled = self.compiled(session.get_bind().dialect)
        rows: list[Any] = await driver.fetch(compiled.sql, *compiled.arguments(values))
        return rows

    async def execute(self, session: AsyncSession, values: Mapping[str, Any]) -> None:
        """Run it in the session's transaction, discarding any rows."""
        await self.fetchrow(session, values)


def _processor(type_: sa.types.TypeEngine[Any], dialect: Dialect) -> _Processor:
    """The bind processor of `type_` for `dialect`, an array's lighter when it may be.

    An ARRAY whose items need no processing (strings, integers, timestamps on asyncpg)
    is processed by SQLAlchemy into a new list, twice copied, which asyncpg then reads
    as it would have read the list given: a flat list is handed over as it is (~0.6 us
    an array instead of ~1.3; the hot statements bind dozens of arrays a notice).
    Anything else (a tuple, nested lists, an array of JSON) keeps SQLAlchemy's processor.
    """
    impl = type_.dialect_impl(dialect)
    process = impl.bind_processor(dialect)
    if process is None or not isinstance(impl, sa.ARRAY):
        return process
    if impl.item_type.dialect_impl(dialect).bind_processor(dialect) is not None:
        return process
    return _flat_list_as_is(process)


def _flat_list_as_is(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def as_is(value: Any) -> Any:
        if type(value) is list and (not value or not isinstance(value[0], list | tuple)):
            return value
        return process(value)

    return as_is


def holds_connection(session: AsyncSession) -> bool:
    """Whether the session's transaction has checked a connection out of the pool yet."""
    transaction = session.sync_session.get_transaction()
    # SQLAlchemy keeps the connections a session transaction holds in `_connections`
    # (no public accessor); unknown means held, which keeps the session's own path.
    return transaction is None or bool(getattr(transaction, "_connections", True))


async def _fetch_borrowed(bind: Any, sql: str, arguments: list[Any]) -> Any:
    """Run one autocommitted statement on a connection borrowed from `bind`'s pool."""
    return await _on_borrowed(bind, lambda driver: driver.fetchrow(sql, *arguments))


async def fetch_each_borrowed(bind: Any, sql: str, arguments: list[list[Any]]) -> list[Any]:
    """Run `sql` once for each of `arguments` on a connection borrowed from `bind`'s pool
    (a session's bind), pipelined with one Sync and no BEGIN: one implicit transaction,
    committed as it answers or rolled back whole. Every row, in order (asyncpg Records)."""
    rows: list[Any] = await _on_borrowed(bind, lambda driver: driver.fetchmany(sql, arguments))
    return rows


async def _on_borrowed(bind: Any, call: Callable[[Any], Awaitable[Any]]) -> Any:
    """`call` with the asyncpg connection of a connection borrowed from `bind`'s pool,
    given back a few loop turns after it answered (`give_back_later`)."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    # The pool's checkout and return may open or reset a connection: asyncpg calls that
    # SQLAlchemy's pool makes from inside a greenlet.
    borrowed = await greenlet_spawn(engine.raw_connection)
    try:
        answer = await call(borrowed.driver_connection)
    except BaseException:
        await greenlet_spawn(borrowed.close)
        raise
    give_back_later(borrowed)
    return answer


# Connections on their way back to the pool (the loop holds tasks weakly).
_GIVING_BACK: set[asyncio.Task[None]] = set()


def give_back_later(borrowed: Any) -> None:
    """Return `borrowed` to its pool three loop turns from now, not before the caller goes on.

    The return (~0.1 ms of SQLAlchemy's pool, through a greenlet) sat between a lone
    write's answer and its unit of work's after-commit effects: on router's path, before
    the sends those effects start; on intake's (`db.fetchrow_borrowed`), before the
    relay's produce request. Two hops, then a task: by then the send's first step and the
    task writing its request have run (the consumer lets them, applying.py), and intake's
    commit has handed its row to the relay, which writes the request in that turn. The
    connection is idle meanwhile (the statement committed as it answered).
    """
    loop = asyncio.get_running_loop()

    def give_back() -> None:
        task = loop.create_task(greenlet_spawn(borrowed.close))
        _GIVING_BACK.add(task)
        task.add_done_callback(_GIVING_BACK.discard)

    loop.call_soon(loop.call_soon, give_back)


def is_postgres_session(session: AsyncSession) -> bool:
    """True when the session talks to PostgreSQL through asyncpg."""
    return session.get_bind().dialect.driver == "asyncpg"


async def driver_connection(session: AsyncSession, *, begin: bool = True) -> Any:
    """The session's asyncpg connection, with the session's transaction begun on it.

    `begin=False`: when no transaction has begun yet, leave it so (the next statement
    commits by itself); one that has begun is still the one statements join.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    adapted: Any = raw.dbapi_connection
    if adapted._transaction is None and not begin:
        return raw.driver_connection
    if adapted._transaction is None:
        # What SQLAlchemy's asyncpg adapter does before its own first statement: BEGIN,
        # remembered by the adapter, so the session's commit or rollback ends it.
        await adapted._start_transaction()
    driver = raw.driver_connection
    if driver is None or not driver.is_in_transaction():
        # Never run a write outside the unit of work's transaction (autocommitted).
        raise RuntimeError("no transaction open on the session's connection")
    return driver


# asyncpg's own errors for a database that cannot be reached, matched by name so that
# callers in SQLite-only processes need not import asyncpg. Statements sent here raise them raw
# (SQLAlchemy wraps only what goes through its execute path), and so does its asyncpg
# adapter's BEGIN (as the cause of its own InterfaceError).
_LOST = frozenset(
    {
        "AdminShutdownError",  # the server was told to end this backend (or to stop)
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CrashShutdownError",
        "TooManyConnectionsError",  # no connection to be had: an outage, not a bug
    }
)


def asyncpg_unreachable(exc: BaseException) -> bool:
    """True when `exc` itself is asyncpg saying the database cannot be reached (not a bug)."""
    for cls in type(exc).__mro__:
        if not cls.__module__.startswith("asyncpg"):
            continue
        if cls.__name__ in _LOST:
            return True
        # A call on a connection whose socket already closed; other InterfaceErrors
        # (an operation already in progress, ...) are bugs, not outages.
        if cls.__name__ == "InterfaceError" and "connection is closed" in str(exc):
            return True
    return False
