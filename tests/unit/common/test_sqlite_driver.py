"""The SQLite default's statements: one hand-off each to aiosqlite's thread, same results.

Every test runs on a real SQLite file through `make_engine`, as the services do. The
hand-offs are counted at aiosqlite's `Connection._execute`, the door to the connection's
thread that every statement, commit and rollback goes through.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm import exc as orm_exc

from services.common.db import make_engine
from services.common.settings import CommonSettings


class _Base(DeclarativeBase):
    pass


class _Row(_Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    version: Mapped[int] = mapped_column(default=1)
    __mapper_args__ = {"version_id_col": version}


class _HandOffs:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> _HandOffs:
    counted = _HandOffs()
    queue = aiosqlite.Connection._execute

    async def counting(
        self: aiosqlite.Connection, fn: object, *args: object, **kw: object
    ) -> object:
        counted.count += 1
        return await queue(self, fn, *args, **kw)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return counted


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(CommonSettings(database_url=None, var_dir=tmp_path), "intake")
    async with engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
    yield engine
    await engine.dispose()


async def test_a_statement_is_one_hand_off(engine: AsyncEngine, hand_offs: _HandOffs) -> None:
    """Four statements, their BEGIN IMMEDIATE with the first, the commit, and no rollback
    when the pool takes the connection back: five hand-offs (SQLAlchemy's stock aiosqlite
    adapter took nineteen: cursor, execute, fetchall and close each one)."""
    async with engine.begin() as connection:
        await connection.execute(sa.text("SELECT 1"))  # the pool's connection opened
    hand_offs.count = 0
    async with engine.begin() as connection:
        await connection.execute(sa.text("INSERT INTO rows (name, version) VALUES ('a', 1)"))
        await connection.execute(
            sa.text("INSERT INTO rows (name, version) VALUES (:n, 1)"), [{"n": "b"}, {"n": "c"}]
        )
        await connection.execute(sa.text("SELECT id, name FROM rows"))
        await connection.execute(sa.text("UPDATE rows SET version = 2 RETURNING id"))
    assert hand_offs.count == 5
    # A transaction that ends before any statement never reaches SQLite.
    async with engine.begin():
        pass
    assert hand_offs.count == 5


def _lock_free(path: Path) -> bool:
    """Whether another connection can take the file's write lock right now."""
    other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    else:
        other.execute("ROLLBACK")
        return True
    finally:
        other.close()


async def test_begin_immediate_locks_before_the_first_statement(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """The deferred BEGIN IMMEDIATE goes ahead of the transaction's first statement, a
    read: the write lock is held from it on, and given back at the commit."""
    path = tmp_path / "intake.db"
    async with engine.begin() as connection:
        assert _lock_free(path)  # nothing sent yet
        await connection.execute(sa.text("SELECT count(*) FROM rows"))
        assert not _lock_free(path)
    assert _lock_free(path)


async def test_a_begin_that_finds_the_file_locked_fails_its_statement(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA busy_timeout = 50")
        await connection.commit()
        holder = sqlite3.connect(tmp_path / "intake.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(exc.OperationalError, match="locked"):
            await connection.execute(sa.text("SELECT count(*) FROM rows"))
        await connection.rollback()
        holder.execute("ROLLBACK")
        holder.close()
        # Nothing left half-open: the next transaction begins and commits as usual.
        await connection.execute(sa.text("INSERT INTO rows (name, version) VALUES ('z', 1)"))
        await connection.commit()
        assert (await connection.execute(sa.text("SELECT name FROM rows"))).scalar() == "z"


async def test_results_rowcount_lastrowid_and_description(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        inserted = await connection.execute(
            sa.text("INSERT INTO rows (name, version) VALUES ('a', 1)")
        )
        assert (inserted.rowcount, inserted.lastrowid) == (1, 1)
        many = await connection.execute(
            sa.text("INSERT INTO rows (name, version) VALUES (:n, 1)"), [{"n": "b"}, {"n": "c"}]
        )
        assert many.rowcount == 2
        selected = await connection.execute(sa.text("SELECT id, name FROM rows ORDER BY id"))
        assert list(selected.keys()) == ["id", "name"]
        assert selected.all() == [(1, "a"), (2, "b"), (3, "c")]
        updated = await connection.execute(
            sa.text("UPDATE rows SET version = 2 WHERE id > 1 RETURNING id")
        )
        assert sorted(updated.scalars()) == [2, 3]
        none = await connection.execute(sa.text("DELETE FROM rows WHERE id = 99"))
        assert none.rowcount == 0
        # A result read a row at a time, then the rest.
        partial = await connection.execute(sa.text("SELECT name FROM rows ORDER BY id"))
        assert partial.fetchone() == ("a",)
        assert partial.fetchmany(1) == [("b",)]
        assert partial.fetchall() == [("c",)]


async def test_the_orm_gets_ids_and_checks_versions(engine: AsyncEngine) -> None:
    """The ORM reads lastrowid for a new row's key and rowcount for its version check."""
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        row = _Row(name="first")
        session.add(row)
        await session.flush()
        assert row.id == 1
        row.name = "renamed"
        await session.flush()
        assert row.version == 2
    async with engine.begin() as connection:  # another writer moves the version on
        await connection.execute(sa.text("UPDATE rows SET version = 9"))
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        session.add(row)  # as loaded above: version 2
        row.name = "again"
        with pytest.raises(orm_exc.StaleDataError):
            await session.flush()


_INSERT = sa.text("INSERT INTO rows (name, version) VALUES (:n, 1)")


async def _insert_both(engine: AsyncEngine, first: str, second: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(_INSERT, {"n": first})
        await connection.execute(_INSERT, {"n": second})


async def _select_nope(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(sa.text("SELECT nope FROM rows"))


async def test_errors_are_sqlalchemys_and_roll_back(engine: AsyncEngine) -> None:
    canary = f"canary-{uuid.uuid4()}"
    async with engine.begin() as connection:
        await connection.execute(_INSERT, {"n": canary})
    with pytest.raises(exc.IntegrityError):
        await _insert_both(engine, "x", canary)
    with pytest.raises(exc.OperationalError):
        await _select_nope(engine)
    async with engine.connect() as connection:
        names = (await connection.execute(sa.text("SELECT name FROM rows"))).scalars().all()
    assert names == [canary]  # 'x' rolled back with its transaction


async def test_streamed_results_keep_the_server_side_cursor(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            sa.text("INSERT INTO rows (name, version) VALUES (:n, 1)"),
            [{"n": f"r{i}"} for i in range(5)],
        )
    async with engine.connect() as connection:
        streamed = await connection.stream(sa.text("SELECT name FROM rows ORDER BY id"))
        assert [row.name async for row in streamed] == [f"r{i}" for i in range(5)]
