"""SQL for notices and their versions; `apply` writes a whole transition at once.

The repository works in the caller's session and never commits: the caller of the use
case owns the transaction. Rows come back as frozen records with timezone-aware UTC
datetimes (SQLite returns naive ones), so nothing above this module sees a database row.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import SessionlessCommit
from services.common.direct import is_postgres_session
from services.common.outbox import enqueue
from services.intake.audit import AuditTrail
from services.intake.domain import NoticeRecord, NoticeState, Transition, VersionRecord
from services.intake.fast_writes import insert_new_notice, insert_new_notice_alone
from services.intake.grouped_writes import GroupedWrites
from services.intake.tables import notice_versions, notices

__all__ = [
    "Cursor",
    "InvalidCursor",
    "NoticeFilters",
    "NoticeRepository",
]

OPEN_STATES: tuple[NoticeState, ...] = ("received", "updated")
CLOSED_STATES: tuple[NoticeState, ...] = ("cancelled", "expired")


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _req(value: datetime | None) -> datetime:
    aware = _aware(value)
    assert aware is not None
    return aware


_NOTICE_TIMES = ("window_start", "window_end", "sent_at", "received_at", "updated_at")


def _notice(row: Any) -> NoticeRecord:
    data = dict(row._mapping)
    for name in _NOTICE_TIMES:
        data[name] = _req(data[name])
    data["closed_at"] = _aware(data["closed_at"])
    data["restricted_purged_at"] = _aware(data["restricted_purged_at"])
    return NoticeRecord(**data)


def _version(row: Any) -> VersionRecord:
    data = dict(row._mapping)
    for name in ("window_start", "window_end", "sent_at", "received_at"):
        data[name] = _req(data[name])
    data["version_refs"] = tuple(data["version_refs"] or ())
    data["policy_annotations"] = tuple(data["policy_annotations"] or ())
    return VersionRecord(**data)


@dataclass(frozen=True)
class NoticeFilters:
    """What `GET /v1/notices` narrows by; None means any."""

    source_key: str | None = None
    status: str | None = None
    operation_type: str | None = None
    state: NoticeState | None = None
    window_from: datetime | None = None
    window_to: datetime | None = None


class InvalidCursor(ValueError):
    """A pagination cursor this service did not issue."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last item's receipt time and id (newest first)."""

    received_at: datetime
    notice_id: str

    def encode(self) -> str:
        """An opaque string for clients."""
        raw = json.dumps([self.received_at.isoformat(), self.notice_id]).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse a cursor from `encode`; raises InvalidCursor."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            when, notice_id = json.loads(raw)
            received_at = datetime.fromisoformat(when)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise InvalidCursor("the cursor is not one this service issued") from None
        if received_at.tzinfo is None or not isinstance(notice_id, str) or len(notice_id) > 36:
            raise InvalidCursor("the cursor is not one this service issued")
        return cls(received_at.astimezone(UTC), notice_id)


class NoticeRepository:
    """Notices and versions of one unit of work; events leave through its outbox."""

    def __init__(
        self,
        session: AsyncSession | Callable[[], AsyncSession],
        *,
        event_source: str,
        lone_write_commits: bool = False,
        sessionless: Callable[[], SessionlessCommit | None] | None = None,
        writes: GroupedWrites | None = None,
    ) -> None:
        # A callable: the unit of work's session, opened when first asked for.
        self._session_of = session if callable(session) else lambda: session
        self._event_source = event_source
        self._lone_write_commits = lone_write_commits
        self._sessionless = sessionless
        self._writes = writes

    @property
    def _session(self) -> AsyncSession:
        return self._session_of()

    @property
    def _audit(self) -> AuditTrail:
        return AuditTrail(self._session)

    async def apply(self, transition: Transition, *, now: datetime) -> None:
        """Write a transition at once: row, version, purge, audit entry and outbox event."""
        notice = transition.notice
        writes: list[sa.Insert | sa.Update] = [
            sa.insert(notices).values(**notice.values())
            if transition.created
            else sa.update(notices).where(notices.c.id == notice.id).values(**notice.values())
        ]
        if transition.version is not None:
            writes.append(sa.insert(notice_versions).values(**transition.version.values()))
        if transition.event is not None and not transition.purge_restricted:
            # The common case (a submission, an update): row, version, audit entry and
            # event in one statement on PostgreSQL. None of them reads another's rows.
            writes.append(self._audit.entry(transition.audit, now=now))
            await enqueue(
                self._session, transition.event, source=self._event_source, alongside=writes
            )
            return
        for write in writes:
            await self._session.execute(write)
        if transition.purge_restricted:
            await self._session.execute(
                sa.update(notice_versions)
                .where(
                    notice_versions.c.notice_id == notice.id,
                    notice_versions.c.restricted_sealed.is_not(None),
                )
                .values(restricted_sealed=None)
            )
        if transition.event is not None:
            await enqueue(self._session, transition.event, source=self._event_source)
        await self._audit.append(transition.audit, now=now)

    async def apply_new(self, transition: Transition, *, now: datetime) -> str | None:
        """Write a new notice's transition unless its source already used the reference.

        Returns None when written, or the id of the notice already holding the reference
        (then nothing is written). On PostgreSQL the look-up and every write are one
        statement (fast_writes.py), safe against a concurrent request with the same
        reference without any lock; SQLite's writer lock (BEGIN IMMEDIATE) serialises
        the look-up and the writes below. When the unit of work was opened with
        `lone_write_commits` and nothing was sent before it, that statement commits by
        itself (direct.py); when the unit of work opened no session yet, it is sent with
        none (`insert_new_notice_alone`).
        """
        notice = transition.notice
        alone = None if self._sessionless is None else self._sessionless()
        if alone is not None:
            written, existing_id = await insert_new_notice_alone(
                alone, transition, now=now, event_source=self._event_source, writes=self._writes
            )
            if written or existing_id is not None:
                return existing_id
            # Taken by a transaction that committed while the statement ran: the session,
            # opened now, reads in a new snapshot that sees it.
            found = await self.find_by_reference(
                source_key=notice.source_key, reference=notice.reference
            )
            assert found is not None  # the unique index held this reference back
            return found.id
        if is_postgres_session(self._session):
            return await insert_new_notice(
                self._session,
                transition,
                now=now,
                event_source=self._event_source,
                lone=self._lone_write_commits,
            )
        existing = await self.find_by_reference(
            source_key=notice.source_key, reference=notice.reference
        )
        if existing is not None:
            return existing.id
        await self.apply(transition, now=now)
        return None

    async def get(self, notice_id: str, *, for_update: bool = False) -> NoticeRecord | None:
        """The notice, row-locked for the transaction when `for_update` (PostgreSQL)."""
        query = sa.select(notices).where(notices.c.id == notice_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).one_or_none()
        return _notice(row) if row is not None else None

    async def find_by_reference(self, *, source_key: str, reference: str) -> NoticeRecord | None:
        """The notice a source already recorded under `reference`."""
        query = sa.select(notices).where(
            notices.c.source_key == source_key, notices.c.reference == reference
        )
        row = (await self._session.execute(query)).one_or_none()
        return _notice(row) if row is not None else None

    async def versions(self, notice_id: str) -> list[VersionRecord]:
        """Every version of a notice, oldest first."""
        rows = await self._session.execute(
            sa.select(notice_versions)
            .where(notice_versions.c.notice_id == notice_id)
            .order_by(notice_versions.c.version)
        )
        return [_version(row) for row in rows]

    async def version(self, notice_id: str, version: int) -> VersionRecord | None:
        """One version of a notice."""
        query = sa.select(notice_versions).where(
            notice_versions.c.notice_id == notice_id, notice_versions.c.version == version
        )
        row = (await self._session.execute(query)).one_or_none()
        return _version(row) if row is not None else None

    async def page(
        self,
        filters: NoticeFilters,
        *,
        limit: int,
        offset: int = 0,
        after: Cursor | None = None,
    ) -> list[NoticeRecord]:
        """Notices matching `filters`, newest first; keyset after `after`, or by offset."""
        n = notices.c
        query = sa.select(notices)
        if filters.source_key is not None:
            query = query.where(n.source_key == filters.source_key)
        if filters.status is not None:
            query = query.where(n.status == filters.status)
        if filters.operation_type is not None:
            query = query.where(n.operation_type == filters.operation_type)
        if filters.state is not None:
            query = query.where(n.state == filters.state)
        # Windows that overlap [window_from, window_to].
        if filters.window_from is not None:
            query = query.where(n.window_end >= filters.window_from)
        if filters.window_to is not None:
            query = query.where(n.window_start <= filters.window_to)
        if after is not None:
            query = query.where(
                sa.or_(
                    n.received_at < after.received_at,
                    sa.and_(n.received_at == after.received_at, n.id < after.notice_id),
                )
            )
        query = query.order_by(n.received_at.desc(), n.id.desc()).limit(limit).offset(offset)
        return [_notice(row) for row in await self._session.execute(query)]

    async def due_for_expiry(self, *, ended_before: datetime, limit: int) -> list[NoticeRecord]:
        """Open notices whose window ended before `ended_before`, locked (others skip them)."""
        query = (
            sa.select(notices)
            .where(notices.c.state.in_(OPEN_STATES), notices.c.window_end <= ended_before)
            .order_by(notices.c.window_end)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_notice(row) for row in await self._session.execute(query)]

    async def due_for_purge(self, *, closed_before: datetime, limit: int) -> list[NoticeRecord]:
        """Closed notices whose restricted detail is still held past retention, locked."""
        query = (
            sa.select(notices)
            .where(
                notices.c.state.in_(CLOSED_STATES),
                notices.c.closed_at <= closed_before,
                notices.c.restricted_purged_at.is_(None),
            )
            .order_by(notices.c.closed_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_notice(row) for row in await self._session.execute(query)]
