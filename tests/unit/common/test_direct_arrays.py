"""A direct statement's array values: a flat list of items that need no processing is
handed to asyncpg as it is; everything else is processed as SQLAlchemy processes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import asyncpg

from services.common.direct import DirectStatement

DIALECT = asyncpg.dialect()  # type: ignore[no-untyped-call]
AT = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)

TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "names": postgresql.ARRAY(sa.String(36)),
    "counts": postgresql.ARRAY(sa.Integer),
    "times": postgresql.ARRAY(sa.DateTime(timezone=True)),
    "documents": postgresql.ARRAY(sa.JSON),
}

STATEMENT = DirectStatement(
    lambda: sa.text(
        "SELECT :names AS names, :counts AS counts, :times AS times, :documents AS documents"
    ).bindparams(*(sa.bindparam(name, type_=type_) for name, type_ in TYPES.items()))
)


def _as_sqlalchemy_processes(name: str, value: Any) -> Any:
    process = TYPES[name].dialect_impl(DIALECT).bind_processor(DIALECT)
    return value if process is None or value is None else process(value)


def _arguments(values: dict[str, Any]) -> dict[str, Any]:
    compiled = STATEMENT.compiled(DIALECT)
    return dict(zip(compiled.names, compiled.arguments(values), strict=True))


@pytest.mark.parametrize(
    "values",
    [
        {"names": ["a", "b"], "counts": [1, 2], "times": [AT], "documents": [{"k": [1]}]},
        {"names": [], "counts": [], "times": [], "documents": []},
        {"names": None, "counts": None, "times": None, "documents": None},
        # Not flat lists: SQLAlchemy's own processing (a tuple becomes a list, nested kept).
        {"names": ("a", "b"), "counts": [[1, 2], [3, 4]], "times": (AT,), "documents": ({},)},
        {"names": [("a",)], "counts": [(1, 2)], "times": [None], "documents": [None]},
    ],
)
def test_array_values_are_what_sqlalchemy_would_bind(values: dict[str, Any]) -> None:
    arguments = _arguments(values)

    assert arguments == {name: _as_sqlalchemy_processes(name, v) for name, v in values.items()}
    assert {name: type(v) for name, v in arguments.items()} == {
        name: type(_as_sqlalchemy_processes(name, v)) for name, v in values.items()
    }


def test_a_flat_list_of_plain_items_is_handed_over_as_it_is() -> None:
    names, counts, times = ["a", "b"], [1, 2], [AT]

    arguments = _arguments(
        {"names": names, "counts": counts, "times": times, "documents": [{"k": 1}]}
    )

    assert arguments["names"] is names
    assert arguments["counts"] is counts
    assert arguments["times"] is times
    assert arguments["documents"] == ['{"k": 1}']  # an array of JSON is still serialised
