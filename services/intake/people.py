"""The people of the directory in force, as intake recorded them (see directory.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.tables import directory_people

__all__ = ["DirectoryPeople"]


class DirectoryPeople:
    """The people of the directory in force, in the caller's transaction (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def holds(self, person_id: str) -> bool:
        """Whether `person_id` is a person in the newest directory recorded here."""
        found = await self._session.execute(
            sa.select(sa.literal(1))
            .select_from(directory_people)
            .where(directory_people.c.person_id == person_id)
            .limit(1)
        )
        return found.first() is not None

    async def newest(self) -> tuple[datetime, int] | None:
        """When the recorded directory was published and its version; None before any."""
        row = (
            await self._session.execute(
                sa.select(directory_people.c.published_at, directory_people.c.version).limit(1)
            )
        ).first()
        if row is None:
            return None
        published_at: datetime = row.published_at
        if published_at.tzinfo is None:  # SQLite hands back naive datetimes; we store UTC
            published_at = published_at.replace(tzinfo=UTC)
        return published_at, int(row.version)

    async def replace(self, *, version: int, person_ids: tuple[str, ...], at: datetime) -> None:
        """Make these people the directory in force, dropping the version recorded before."""
        await self._session.execute(sa.delete(directory_people))
        await self._session.execute(
            sa.insert(directory_people),
            [{"version": version, "person_id": p, "published_at": at} for p in person_ids],
        )
