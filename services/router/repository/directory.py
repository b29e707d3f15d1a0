"""Stored directory versions: the highest version is the one in force."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.directory import DirectoryPublished
from services.common.outbox import enqueue
from services.router.domain import DirectoryDocument, DirectorySource, DirectoryVersion
from services.router.repository._sql import must
from services.router.tables import directory_versions

__all__ = ["SqlDirectoryRepository"]


class SqlDirectoryRepository:
    """Directory versions in the caller's transaction (never commits)."""

    def __init__(self, session: AsyncSession, *, source: str) -> None:
        self._session = session
        self._source = source

    async def current(self) -> DirectoryVersion | None:
        """The directory in force (the highest version), if any was ever stored."""
        row = (
            await self._session.execute(
                sa.select(directory_versions).order_by(directory_versions.c.version.desc()).limit(1)
            )
        ).first()
        if row is None:
            return None
        return DirectoryVersion(
            version=row.version,
            document=DirectoryDocument.model_validate(row.document),
            digest=row.digest,
            source=cast(DirectorySource, row.source),
            created_by=row.created_by,
            created_at=must(row.created_at),
        )

    async def last_file_digest(self) -> str | None:
        """Digest of the directory most recently loaded from a file."""
        result = await self._session.execute(
            sa.select(directory_versions.c.digest)
            .where(directory_versions.c.source == "file")
            .order_by(directory_versions.c.version.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def add(
        self,
        *,
        version: int,
        document: DirectoryDocument,
        digest: str,
        source: DirectorySource,
        created_by: str,
        at: datetime,
    ) -> None:
        """Store `document` as `version` (fails on a concurrent writer of the same version)."""
        await self._session.execute(
            sa.insert(directory_versions).values(
                version=version,
                document=document.model_dump(mode="json"),
                digest=digest,
                source=source,
                created_by=created_by,
                created_at=at,
            )
        )

    async def announce(self, event: DirectoryPublished) -> None:
        """Put `event` in the outbox, in the transaction that made its version current."""
        await enqueue(self._session, event, source=self._source)
