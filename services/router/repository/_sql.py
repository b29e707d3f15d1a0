"""Small helpers the router's repositories share (times and dialects)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["aware", "is_postgres", "must"]


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
