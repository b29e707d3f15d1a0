"""Helpers every rumor_control repository shares: ids as strings, datetimes as UTC."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["aware", "insert_for", "uuid_or_none", "when"]


def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def when(value: datetime | None) -> datetime:
    """A non-null timestamp column, timezone-aware."""
    result = aware(value)
    assert result is not None
    return result


def uuid_or_none(value: str | None) -> uuid.UUID | None:
    """Ids are stored as 36-character strings so SQLite and PostgreSQL read them alike."""
    return None if value is None else uuid.UUID(value)


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT (for ON CONFLICT DO NOTHING)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
