"""The notice projection: releasable fields and fingerprints of intake's notices."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.notices import NoticeReceived, NoticeUpdated
from services.rumor_control.domain import NoticeRow, VersionApplied
from services.rumor_control.repository._sql import aware, insert_for
from services.rumor_control.tables import notices, standby_requests

__all__ = ["SqlNotices"]


def _notice(row: Any) -> NoticeRow:
    return NoticeRow(
        notice_id=uuid.UUID(row.notice_id),
        version=row.version,
        status=row.status,
        area=row.area,
        area_code=row.area_code,
        window_start=aware(row.window_start),
        window_end=aware(row.window_end),
        cancelled_at=aware(row.cancelled_at),
        fingerprints=frozenset(row.fingerprints or ()),
        key_ids=frozenset(row.fingerprint_key_ids or ()),
    )


class SqlNotices:
    """Notices as rumor_control knows them, and acknowledgements waiting for their notice."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self, notice_id: uuid.UUID) -> None:
        """Serialise this transaction with others about the same notice until it ends.

        A notice and its acknowledgement arrive on different topics and are handled at the
        same time; without this, each could miss the other's uncommitted row and no standby
        would be drafted. PostgreSQL: a transaction-scoped advisory lock. SQLite: BEGIN
        IMMEDIATE already serialises every writer.
        """
        if self._session.get_bind().dialect.name == "postgresql":
            await self._session.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                {"key": f"aviso-rumor-notice-{notice_id}"},
            )

    async def get(self, notice_id: uuid.UUID) -> NoticeRow | None:
        """The projected notice, if its events have arrived."""
        statement = sa.select(notices).where(notices.c.notice_id == str(notice_id))
        row = (await self._session.execute(statement)).first()
        return None if row is None else _notice(row)

    async def get_many(self, notice_ids: Iterable[uuid.UUID]) -> list[NoticeRow]:
        """The projected notices among `notice_ids`."""
        ids = [str(i) for i in notice_ids]
        if not ids:
            return []
        rows = await self._session.execute(sa.select(notices).where(notices.c.notice_id.in_(ids)))
        return [_notice(row) for row in rows]

    async def recent(self, *, since: datetime) -> list[NoticeRow]:
        """Notices whose window ends after `since` (candidates for rumor suggestions)."""
        rows = await self._session.execute(
            sa.select(notices).where(
                sa.or_(notices.c.window_end.is_(None), notices.c.window_end >= since)
            )
        )
        return [_notice(row) for row in rows]

    async def apply_version(
        self, notice: NoticeReceived | NoticeUpdated, *, at: datetime
    ) -> VersionApplied:
        """Apply a received/updated version: newest fields win, fingerprints accumulate.

        Also takes the standby request an acknowledgement left waiting for this notice. A
        notice seen for the first time (nearly every one) is one statement on PostgreSQL:
        the request's DELETE and the row's INSERT together.
        """
        values = {
            "notice_id": str(notice.notice_id),
            "version": notice.version,
            "status": notice.status,
            "area": notice.area,
            "area_code": notice.area_code,
            "window_start": notice.window_start,
            "window_end": notice.window_end,
            "fingerprints": sorted(set(notice.restricted_fingerprints)),
            "fingerprint_key_ids": [notice.fingerprint_key_id],
            "updated_at": at,
        }
        if self._session.get_bind().dialect.name == "postgresql":
            taken, inserted = (await self._session.execute(_first_version(), values)).one()
        else:
            deleted = await self._session.execute(_take_request(), values)
            added = await self._session.execute(_insert_version(sqlite.insert), values)
            taken = bool(getattr(deleted, "rowcount", 0))
            inserted = bool(getattr(added, "rowcount", 0))
        if not inserted:
            await self._merge_version(notice, at=at)
        return VersionApplied(first_seen=bool(inserted), standby_requested=bool(taken))

    async def _merge_version(self, notice: NoticeReceived | NoticeUpdated, *, at: datetime) -> None:
        """A later (or redelivered, or out-of-order) version of a notice already projected.

        Versions may arrive out of order after a redelivery, so the releasable fields are
        replaced only by a higher version, while the fingerprints are always added.
        """
        key = notices.c.notice_id == str(notice.notice_id)
        existing = (
            await self._session.execute(sa.select(notices).where(key).with_for_update())
        ).one()
        values: dict[str, Any] = {
            "fingerprints": sorted(
                set(existing.fingerprints or ()) | set(notice.restricted_fingerprints)
            ),
            "fingerprint_key_ids": sorted(
                set(existing.fingerprint_key_ids or ()) | {notice.fingerprint_key_id}
            ),
            "updated_at": at,
        }
        if notice.version > existing.version:
            values.update(
                version=notice.version,
                status=notice.status,
                area=notice.area,
                area_code=notice.area_code,
                window_start=notice.window_start,
                window_end=notice.window_end,
            )
        await self._session.execute(sa.update(notices).where(key).values(**values))

    async def cancel(
        self, *, notice_id: uuid.UUID, version: int, status: str, at: datetime
    ) -> None:
        """Mark a notice cancelled (creating a bare row if the cancel came first)."""
        existing = await self.get(notice_id)
        if existing is None:
            await self._session.execute(
                sa.insert(notices).values(
                    notice_id=str(notice_id),
                    version=version,
                    status=status,
                    cancelled_at=at,
                    fingerprints=[],
                    fingerprint_key_ids=[],
                    updated_at=at,
                )
            )
            return
        await self._session.execute(
            sa.update(notices)
            .where(notices.c.notice_id == str(notice_id))
            .values(cancelled_at=at, version=max(version, existing.version), updated_at=at)
        )

    async def fingerprints_of(
        self, notice_ids: Iterable[uuid.UUID]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """The union of these notices' restricted-term fingerprints, and the key ids used."""
        found: set[str] = set()
        key_ids: set[str] = set()
        for notice in await self.get_many(notice_ids):
            found |= notice.fingerprints
            key_ids |= notice.key_ids
        return frozenset(found), frozenset(key_ids)

    async def request_standby(
        self, *, notice_id: uuid.UUID, alert_id: uuid.UUID, by: uuid.UUID, at: datetime
    ) -> None:
        """Remember an acknowledgement whose notice has not arrived yet."""
        statement = (
            insert_for(self._session)(standby_requests)
            .values(
                notice_id=str(notice_id),
                alert_id=str(alert_id),
                acknowledged_by=str(by),
                requested_at=at,
            )
            .on_conflict_do_nothing(index_elements=["notice_id"])
        )
        await self._session.execute(statement)


_VERSION_COLUMNS = (
    "notice_id", "version", "status", "area", "area_code", "window_start", "window_end",
    "fingerprints", "fingerprint_key_ids", "updated_at",
)  # fmt: skip


def _insert_version(insert: Any) -> Any:
    """INSERT of a notice's first version, bound by column name; nothing if it exists."""
    bound = {name: sa.bindparam(name, type_=notices.c[name].type) for name in _VERSION_COLUMNS}
    return insert(notices).values(**bound).on_conflict_do_nothing(index_elements=["notice_id"])


@cache
def _take_request() -> sa.Delete:
    """DELETE of the standby request waiting for a notice (SQLite; PostgreSQL folds it)."""
    return sa.delete(standby_requests).where(
        standby_requests.c.notice_id
        == sa.bindparam("notice_id", type_=standby_requests.c.notice_id.type)
    )


@cache
def _first_version() -> sa.Select[bool, bool]:
    """PostgreSQL: take the notice's standby request and insert its first version in one
    statement (built once): whether a request was taken, and whether the row is new. Both
    run after the caller's lock, so a concurrent acknowledgement cannot fall between them."""
    taken = _take_request().returning(standby_requests.c.notice_id).cte("taken")
    inserted = _insert_version(postgresql.insert).returning(notices.c.notice_id).cte("inserted")
    return sa.select(sa.exists(taken.select()), sa.exists(inserted.select()))
