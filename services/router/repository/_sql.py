"""Small helpers the router's repositories share (times and dialects)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["aware", "constant", "constants", "is_postgres", "must"]


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def must(value: datetime | None) -> datetime:
    """`aware` for a column that is never NULL."""
    result = aware(value)
    assert result is not None
    return result


def is_postgres(session: AsyncSession) -> bool:
    """True when the session talks to PostgreSQL (row locks, ON CONFLICT dialect)."""
    return session.get_bind().dialect.name == "postgresql"


def constant(value: str) -> sa.ColumnElement[str]:
    """A constant of the code (a state, never a caller's value) written into the SQL text
    as a literal, not bound: a generic plan of the statement (which PostgreSQL keeps
    once it costs no more than the custom ones) can then use a partial index whose
    predicate names it, as the custom plans do."""
    if not value.replace("_", "").isalnum():
        raise ValueError(f"not a plain word: {value!r}")
    return sa.literal_column(f"'{value}'", type_=sa.String)


def constants(values: Iterable[str]) -> list[sa.ColumnElement[str]]:
    """`constant` of each of `values`, sorted (one SQL text whatever the set's order)."""
    return [constant(value) for value in sorted(values)]
