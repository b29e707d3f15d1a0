"""DirectStatement: compiled once from SQLAlchemy Core, arguments in `$n` order, processed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

from services.common.direct import DirectStatement
from services.intake.fast_writes import lock_statement
from services.intake.tables import audit_pending

DIALECT = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]


def _insert() -> sa.Executable:
    names = ("entry_id", "occurred_at", "details")
    values = sa.select(
        *(sa.bindparam(name, type_=audit_pending.c[name].type) for name in names)
    ).limit(1)
    return sa.insert(audit_pending).from_select(list(names), values)


def test_arguments_follow_the_placeholders_and_bind_processing() -> None:
    compiled = DirectStatement(_insert).compiled(DIALECT)
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    arguments = compiled.arguments({"details": {"b": 1}, "entry_id": "e-1", "occurred_at": at})
    by_name: dict[str, Any] = dict(zip(compiled.names, arguments, strict=True))
    # asyncpg takes positional $n parameters with the casts SQLAlchemy renders.
    for n, name in enumerate(compiled.names, start=1):
        assert f"${n}::" in compiled.sql, (n, name)
    assert by_name["entry_id"] == "e-1"
    assert by_name["occurred_at"] == at
    # JSON columns go as text, as SQLAlchemy's own asyncpg path sends them.
    assert json.loads(by_name["details"]) == {"b": 1}
    # The statement's own literal (LIMIT 1) needs no value from the caller.
    assert 1 in [value for name, value in by_name.items() if name not in {"entry_id", "details"}]


def test_a_statement_is_built_once_per_dialect() -> None:
    built: list[int] = []

    def build() -> sa.Executable:
        built.append(1)
        return _insert()

    statement = DirectStatement(build)
    assert statement.compiled(DIALECT) is statement.compiled(DIALECT)
    assert built == [1]


def test_the_lock_statement_takes_one_lock_per_id_in_order() -> None:
    compiled = lock_statement(2).compiled(DIALECT)
    assert compiled.sql.count("pg_advisory_xact_lock(") == 2
    assert compiled.arguments({"id_0": -5, "id_1": 7}) == [-5, 7]
    assert lock_statement(2) is lock_statement(2)
