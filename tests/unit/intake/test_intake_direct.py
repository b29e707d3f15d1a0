"""DirectStatement: compiled once from SQLAlchemy Core, arguments in `$n` order, processed."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

from services.common.direct import DirectStatement
from services.intake import fast_writes
from services.intake.domain import Transition
from services.intake.fast_writes import lock_statement
from services.intake.notices import submission as submission_module
from services.intake.notices.sealing import restricted_detail
from services.intake.tables import audit_pending
from tests.unit.intake.fakes import FIELD_OFFICE, NOW, make_deps
from tests.unit.intake.test_notices_use_cases import submission

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


def _received() -> Transition:
    body = submission("ERO-ONCE")
    return submission_module._new_notice(
        make_deps(),
        notice_id="5f0c2a4e-8d3b-4b7a-9a51-2f4c6e8d1b30",
        owner="owner",
        submission=body,
        detail=restricted_detail(body, FIELD_OFFICE),
        digest="digest",
        actor=FIELD_OFFICE,
        now=NOW,
    )


def _sent(transition: Transition) -> tuple[str, dict[str, Any]]:
    statement, values, _row, _id = fast_writes._prepared(
        transition, now=NOW, event_source="intake", taker=None
    )
    compiled = statement.compiled(DIALECT)
    return compiled.sql, dict(zip(compiled.names, compiled.arguments(values), strict=True))


def test_a_new_notices_row_takes_the_parameters_of_the_values_it_repeats() -> None:
    transition = _received()
    sql, sent = _sent(transition)
    assert transition.version is not None
    # The version's and the look-up's parameters stand for the notice's own columns.
    assert not set(fast_writes._MIRRORS) & set(sent)
    assert sent["v_summary"] == transition.notice.summary
    assert sent["reference"] == "ERO-ONCE"
    assert list(sent.values()).count(transition.notice.summary) == 1
    assert "a_notice_id" not in sent
    # One placeholder a value, some used twice: $1..$58 where 76 values were bound.
    assert max(int(n) for n in re.findall(r"\$(\d+)::", sql)) == len(sent) == 58
    assert sql.count(f"${list(sent).index('v_summary') + 1}::") == 2


def test_a_value_that_is_only_equal_is_bound_apart() -> None:
    transition = _received()
    # Equal to the version's summary, not the same object: the row binds its own.
    copied = "".join(list(transition.notice.summary))
    notice = dataclasses.replace(transition.notice, summary=copied)
    other = dataclasses.replace(transition, notice=notice)
    sql, sent = _sent(other)
    assert sent["n_summary"] == sent["v_summary"] == copied
    assert "n_area" not in sent  # the rest still once
    assert sql != _sent(transition)[0]
