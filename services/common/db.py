"""Database engines and the unit of work.

One SQLAlchemy model set serves both back ends. On PostgreSQL each component
(`intake`, `router`, `rumor_control`, `auth`) owns a schema of its own, chosen per
connection through `search_path`, so table definitions carry no schema name. With no
`DATABASE_URL` each component gets its own SQLite file under `var/`: the embedded
default for a single machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only, greenlet_spawn

from services.common.direct import give_back_later
from services.common.logging import get_logger
from services.common.settings import CommonSettings
from services.common.sqlite_driver import aiosqlite_dbapi

__all__ = [
    "COMPONENTS",
    "OUTBOX_NOTIFY_SETTING",
    "AfterCommit",
    "SessionlessCommit",
    "UnitOfWork",
    "after_commit",
    "asyncpg_dsn",
    "component_url",
    "fetchmany_borrowed",
    "fetchrow_borrowed",
    "is_postgres",
    "make_engine",
    "make_session_factory",
    "ping",
    "session_scope",
    "set_outbox_notify",
]

log = get_logger(__name__)

# Every component with tables of its own; each maps to a PostgreSQL schema.
COMPONENTS = ("auth", "intake", "router", "rumor_control")


def component_url(settings: CommonSettings, component: str) -> URL:
    """The database URL `component` uses: the shared PostgreSQL URL or its own SQLite file."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; expected one of {COMPONENTS}")
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+asyncpg")
        return url
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return make_url(f"sqlite+aiosqlite:///{settings.var_dir / f'{component}.db'}")


def is_postgres(engine_or_url: AsyncEngine | URL) -> bool:
    """True when the engine or URL points at PostgreSQL."""
    url = engine_or_url.url if isinstance(engine_or_url, AsyncEngine) else engine_or_url
    return url.get_backend_name() == "postgresql"


def asyncpg_dsn(url: URL) -> str:
    """A plain libpq-style DSN for asyncpg (LISTEN connections, admin tasks)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_engine(
    settings: CommonSettings,
    component: str,
    *,
    command_timeout_s: float | None = 10.0,
    **kwargs: Any,
) -> AsyncEngine:
    """An engine bound to `component`'s schema (PostgreSQL) or file (SQLite).

    On PostgreSQL every statement times out after `command_timeout_s`: a database that
    hangs (rather than refusing connections) must turn into a 503, not a stuck request.
    Migrations pass None: they and their lock wait may legitimately take longer.

    No `pool_pre_ping`: it costs a BEGIN, a SELECT 1 and a ROLLBACK before every
    transaction. Instead a connection is recycled after `_RECYCLE_S`, and one whose
    socket the server already closed (a restart, an idle timeout) is swapped for a
    fresh one at checkout, before any statement ran on it, without a round trip
    (`_drop_closed_at_checkout`).
    """
    url = component_url(settings, component)
    if is_postgres(url):
        engine = create_async_engine(
            url,
            pool_recycle=kwargs.pop("pool_recycle", _RECYCLE_S),
            # Twenty kept, none beyond: the same ceiling as 10 + 10 overflow, without
            # opening and closing an overflow connection (a TCP connect and PostgreSQL
            # backend start, then its teardown) on every burst above ten (profiled).
            pool_size=kwargs.pop("pool_size", 20),
            max_overflow=kwargs.pop("max_overflow", 0),
            connect_args={
                "server_settings": {"search_path": component, "application_name": component},
                "timeout": 5,
                "command_timeout": command_timeout_s,
            },
            **kwargs,
        )
        event.listen(engine.sync_engine.pool, "checkout", _drop_closed_at_checkout)
        event.listen(engine.sync_engine.pool, "checkout", _outbox_notify_at_checkout(component))
        return engine
    engine = create_async_engine(
        url,
        # aiosqlite with one hand-off to its thread a statement (sqlite_driver.py).
        module=kwargs.pop("module", aiosqlite_dbapi()),
        connect_args={"timeout": 30},
        # One connection per process. Every transaction begins IMMEDIATE (below), so only
        # one at a time could run anyway; with several connections the others polled for
        # the write lock in SQLite's busy handler, which sleeps 1, 2, 5, 10 ... 100 ms
        # between tries and so let a freed lock idle while work waited (latency tails
        # under load). Waiting for the pool's one connection is a FIFO queue woken the
        # moment it is returned. Other processes on the same file still meet the busy
        # handler.
        pool_size=kwargs.pop("pool_size", 1),
        max_overflow=kwargs.pop("max_overflow", 0),
        pool_timeout=kwargs.pop("pool_timeout", _SQLITE_QUEUE_S),
        **kwargs,
    )
    _configure_sqlite(engine)
    return engine


# How long a transaction may queue for the process's SQLite connection: as long as it
# would wait for another process's write lock (busy_timeout) and then some.
_SQLITE_QUEUE_S = 30


# Younger than PostgreSQL's and most proxies' idle timeouts, so the pool rarely hands out
# a connection that the other end has given up on.
_RECYCLE_S = 300


def _drop_closed_at_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    # asyncpg notices a socket the server closed (a restart, a terminated backend) as
    # soon as the FIN arrives, so asking costs no round trip. DisconnectionError makes
    # the pool discard this connection and check out another: safe, as nothing ran yet.
    driver = getattr(dbapi_connection, "driver_connection", None)
    is_closed = getattr(driver, "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("the pooled connection was closed by the server")


# The session setting the outbox's NOTIFY reads (outbox/writing.py `notify_relays`):
# 'off' skips it. Unset (a connection this process never told) means NOTIFY, as before.
OUTBOX_NOTIFY_SETTING = "aviso.outbox_notify"
# Per component, whether this process's commits must NOTIFY (outbox/peers.py decides:
# only while a relay of another process of the component listens). Absent: they do.
_outbox_notify: dict[str, bool] = {}


def set_outbox_notify(component: str, notify: bool | None) -> None:
    """Whether `component`'s commits in this process NOTIFY (None: as by default, they do).

    Each pooled connection learns it at its next checkout (one SET when it changed)."""
    if notify is None:
        _outbox_notify.pop(component, None)
    else:
        _outbox_notify[component] = notify


def _outbox_notify_at_checkout(component: str) -> Callable[[Any, Any, Any], None]:
    def apply(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        wanted = _outbox_notify.get(component, True)
        if record.info.get(OUTBOX_NOTIFY_SETTING, True) == wanted:
            return
        driver = dbapi_connection.driver_connection
        value = "on" if wanted else "off"
        try:
            # On the driver's connection, outside any transaction: a session setting that
            # no rollback of the unit of work undoes. Nothing ran on it yet.
            await_only(driver.execute(f"SET {OUTBOX_NOTIFY_SETTING} = '{value}'"))
        except Exception as exc:
            raise DisconnectionError("the pooled connection failed a SET") from exc
        record.info[OUTBOX_NOTIFY_SETTING] = wanted

    return apply


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN is
        # emitted by us (below) and covers reads as well as writes.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: a transaction that reads and then
        # writes cannot fail half-way with SQLITE_BUSY because another process wrote
        # in between. Several processes share a file, so this matters.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (ids are passed on, not objects)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session in one transaction: committed when the block succeeds, rolled back otherwise."""
    async with factory() as session, session.begin():
        yield session


# -- after-commit effects ---------------------------------------------------------------

AfterCommit = Callable[[], None]
_AFTER_COMMIT = "aviso_after_commit"


def after_commit(session: AsyncSession | Session, effect: AfterCommit) -> None:
    """Run `effect` once the session's transaction has committed; drop it on rollback.

    Logs, metrics and wake-ups describe what happened: they must not happen for a
    transaction that then rolls back, nor hold a transaction open while they run.
    """
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(_AFTER_COMMIT, []).append(effect)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for effect in session.info.pop(_AFTER_COMMIT, ()):
        try:
            effect()
        except Exception:  # an observability side effect must not undo a commit
            log.exception("db.after_commit_failed")


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


class UnitOfWork:
    """One transaction: commit is explicit, anything else rolls back.

    Usage::

        async with UnitOfWork(factory) as uow:
            ... uow.session ...
            uow.after_commit(lambda: log.info("thing.done"))
            await uow.commit()

    A Kafka consumer opens the unit of work itself (the inbox row shares the
    transaction) and hands it to the use case, which never commits it: the consumer
    does, after the use case returned.
    """

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside its `async with` block")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._factory()
        await self._session.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        try:
            if session.in_transaction():
                await session.rollback()
        finally:
            await session.close()
            self._session = None

    def after_commit(self, effect: AfterCommit) -> None:
        """Run `effect` (a log line, a metric) only once this unit of work has committed."""
        after_commit(self.session, effect)

    async def commit(self) -> None:
        """Commit the transaction; the unit of work may not be used afterwards."""
        await self.session.commit()


class SessionlessCommit:
    """The commit of a unit of work whose only write went without a session.

    A write sent autocommitted on a borrowed connection (`fetchrow_borrowed`) is durable
    as it answers, and opening a session around it only to commit nothing cost more
    Python than the statement (profiled on intake's submission: ~75 calls a request).
    What such a write leaves for the commit, the after-commit effects and the outbox's
    hand-over to this process's relay, SQLAlchemy code keeps in a session's `info` and
    runs from the Session `after_commit` listeners. So code that notes into a session
    notes into `stand_in` instead (a session of the engine that never begins nor runs a
    statement, one per process), synchronously (`note`), and what it noted is kept
    here; `committed` gives it to the same listeners; dropping this object is the
    rollback (nothing is run).
    """

    def __init__(self, stand_in: AsyncSession) -> None:
        self._stand_in = stand_in
        self._info: dict[str, Any] = {}

    @property
    def stand_in(self) -> AsyncSession:
        """The session that `note`'s callers and look-ups (its bind, its engine) see."""
        return self._stand_in

    def note(self, write: Callable[[AsyncSession], None]) -> None:
        """Run `write`, which notes into a session's `info`, and keep what it noted."""
        info = self._stand_in.sync_session.info
        write(self._stand_in)
        # Moved out at once (no await in between): the stand-in is shared by every
        # unit of work of the process and must hold nothing between calls.
        for key, value in info.items():
            kept = self._info.get(key)
            if isinstance(kept, list) and isinstance(value, list):
                kept.extend(value)
            else:
                self._info[key] = value
        info.clear()

    def after_commit(self, effect: AfterCommit) -> None:
        """Run `effect` once `committed` is called (never when this is dropped)."""
        self._info.setdefault(_AFTER_COMMIT, []).append(effect)

    def committed(self) -> None:
        """Run what was noted through the Session `after_commit` listeners, once."""
        sync = self._stand_in.sync_session
        sync.info.update(self._info)
        self._info = {}
        try:
            # The event SQLAlchemy itself dispatches when a session's transaction
            # commits; the listeners read and pop what they noted in `info`.
            sync.dispatch.after_commit(sync)
        finally:
            sync.info.clear()


async def fetchrow_borrowed(engine: AsyncEngine, sql: str, arguments: Sequence[Any]) -> Any:
    """Run one statement autocommitted on a connection borrowed from `engine`'s pool (asyncpg,
    no session, no SQLAlchemy `Connection`): its first row, or None. The connection goes
    back to the pool a few loop turns after the answer (`direct.give_back_later`)."""
    # The pool's checkout and return may open or reset a connection: asyncpg calls that
    # SQLAlchemy's pool makes from inside a greenlet.
    borrowed = await greenlet_spawn(engine.sync_engine.raw_connection)
    try:
        row = await borrowed.driver_connection.fetchrow(sql, *arguments)  # type: ignore[union-attr]
    except BaseException:
        await greenlet_spawn(borrowed.close)
        raise
    # Back a few turns from now: the caller's commit hands its outbox row to the relay,
    # which writes the produce request, before the pool's return (~0.1 ms) runs.
    give_back_later(borrowed)
    return row


async def fetchmany_borrowed(
    engine: AsyncEngine, sql: str, arguments: Sequence[Sequence[Any]]
) -> list[Any]:
    """Run one statement for each of `arguments` on a connection borrowed from `engine`'s
    pool: asyncpg's `fetchmany`, every execution pipelined in one round trip (one Sync),
    so PostgreSQL runs them as one implicit transaction, committed when they all succeed
    and rolled back whole when any fails. Every row they answered, in order."""
    borrowed = await greenlet_spawn(engine.sync_engine.raw_connection)
    try:
        rows: list[Any] = await borrowed.driver_connection.fetchmany(sql, arguments)  # type: ignore[union-attr]
    except BaseException:
        await greenlet_spawn(borrowed.close)
        raise
    give_back_later(borrowed)  # as `fetchrow_borrowed`'s
    return rows


async def ping(engine: AsyncEngine) -> None:
    """Run `SELECT 1`; raises when the database does not answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
