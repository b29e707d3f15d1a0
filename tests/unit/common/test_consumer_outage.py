"""A consumer waits out a database outage but dead-letters a message that is itself at fault."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlalchemy.exc

from services.common.delivery import DeliveryError
from services.common.kafka import database_unreachable
from services.common.problems import is_database_unavailable


def _sqlite_error(message: str) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))


def test_connection_refused_is_an_outage() -> None:
    assert database_unreachable(ConnectionRefusedError(111, "Connect call failed"))


def _raised(raiser: Callable[[], None]) -> BaseException:
    try:
        raiser()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


def test_wrapped_connection_error_is_an_outage() -> None:
    def query() -> None:
        try:
            raise ConnectionResetError("server closed the connection")
        except ConnectionResetError as inner:
            raise RuntimeError("query failed") from inner

    assert database_unreachable(_raised(query))


def test_sqlite_lock_is_an_outage_but_a_missing_table_is_not() -> None:
    assert database_unreachable(_sqlite_error("database is locked"))
    assert not database_unreachable(_sqlite_error("no such table: alerts"))


def test_delivery_failure_raised_from_none_is_not_a_database_outage() -> None:
    def send() -> None:
        try:
            raise ConnectionRefusedError(111, "smtp relay down")
        except ConnectionRefusedError:
            raise DeliveryError("smtp failed: ConnectionRefusedError") from None

    assert not database_unreachable(_raised(send))


def test_a_bug_is_not_an_outage() -> None:
    assert not database_unreachable(ValueError("cannot apply this notice"))
    assert not database_unreachable(KeyError("recipient"))


def test_asyncpg_saying_its_connection_is_gone_is_an_outage_on_either_path() -> None:
    import asyncpg
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

    closed = asyncpg.InterfaceError("connection is closed")
    shutdown = asyncpg.AdminShutdownError("terminating connection due to administrator command")

    def adapter_begin() -> None:
        # What SQLAlchemy's asyncpg adapter raises for a BEGIN on a closed connection.
        raise AsyncAdapt_asyncpg_dbapi.InterfaceError("connection is closed") from closed

    for error in (closed, shutdown, _raised(adapter_begin)):
        assert database_unreachable(error)
        assert is_database_unavailable(error)
    busy = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    assert not database_unreachable(busy)  # a bug in how the connection is used
    assert not is_database_unavailable(busy)
