"""SQL for notices, versions, idempotency keys and signature replays.

Functions take the caller's session and never commit: the use case owns the
transaction. Rows come back as frozen dataclasses with timezone-aware UTC datetimes
(SQLite returns naive ones), so nothing above this module sees a database row.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.domain import StoredIdempotencyKey
from services.intake.tables import idempotency_keys, notice_versions, notices, signature_replays

__all__ = [
    "Cursor",
    "InvalidCursor",
    "NoticeFilters",
    "NoticeRecord",
    "VersionRecord",
    "delete_idempotency_keys_before",
    "delete_replays_before",
    "find_by_reference",
    "get_idempotency_key",
    "get_notice",
    "get_version",
    "get_versions",
    "insert_notice",
    "insert_version",
    "list_notices",
    "notices_due_for_expiry",
    "notices_due_for_purge",
    "purge_versions",
    "record_signature",
    "save_idempotency_key",
    "update_notice",
]


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _req(value: datetime | None) -> datetime:
    aware = _aware(value)
    assert aware is not None
    return aware


@dataclass(frozen=True)
class NoticeRecord:
    """A notice's current releasable state (the `notices` row)."""

    id: str
    source_key: str
    reference: str
    state: str
    current_version: int
    status: str
    received_via: str
    operation_type: str
    public_safety_nexus: bool
    window_start: datetime
    window_end: datetime
    area: str
    area_code: str | None
    summary: str
    sent_at: datetime
    received_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    cancel_reason: str | None
    restricted_purged_at: datetime | None

    def values(self) -> dict[str, Any]:
        """Column values for an insert."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_NOTICE_TIMES = ("window_start", "window_end", "sent_at", "received_at", "updated_at")


def _notice(row: Any) -> NoticeRecord:
    data = dict(row._mapping)
    for name in _NOTICE_TIMES:
        data[name] = _req(data[name])
    data["closed_at"] = _aware(data["closed_at"])
    data["restricted_purged_at"] = _aware(data["restricted_purged_at"])
    return NoticeRecord(**data)


@dataclass(frozen=True)
class VersionRecord:
    """One recorded version (the `notice_versions` row); `restricted_sealed` is ciphertext."""

    notice_id: str
    version: int
    msg_type: str
    version_refs: tuple[str, ...]
    status: str
    received_via: str
    operation_type: str
    public_safety_nexus: bool
    window_start: datetime
    window_end: datetime
    area: str
    area_code: str | None
    summary: str
    sent_at: datetime
    received_at: datetime
    cancel_reason: str | None
    policy_annotations: tuple[dict[str, str], ...]
    policy_version: str
    content_digest: str | None
    restricted_sealed: str | None
    restricted_changed: bool
    actor_token_id: str

    def values(self) -> dict[str, Any]:
        """Column values for an insert."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["version_refs"] = list(self.version_refs)
        data["policy_annotations"] = [dict(a) for a in self.policy_annotations]
        return data


def _version(row: Any) -> VersionRecord:
    data = dict(row._mapping)
    for name in ("window_start", "window_end", "sent_at", "received_at"):
        data[name] = _req(data[name])
    data["version_refs"] = tuple(data["version_refs"] or ())
    data["policy_annotations"] = tuple(data["policy_annotations"] or ())
    return VersionRecord(**data)


# --- notices ---------------------------------------------------------------------


async def get_notice(
    session: AsyncSession, notice_id: str, *, for_update: bool = False
) -> NoticeRecord | None:
    """The notice, row-locked for the transaction when `for_update` (PostgreSQL)."""
    query = sa.select(notices).where(notices.c.id == notice_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).one_or_none()
    return _notice(row) if row is not None else None


async def find_by_reference(
    session: AsyncSession, *, source_key: str, reference: str
) -> NoticeRecord | None:
    """The notice a source already recorded under `reference`."""
    row = (
        await session.execute(
            sa.select(notices).where(
                notices.c.source_key == source_key, notices.c.reference == reference
            )
        )
    ).one_or_none()
    return _notice(row) if row is not None else None


async def insert_notice(session: AsyncSession, record: NoticeRecord) -> None:
    """Add a new notice row."""
    await session.execute(sa.insert(notices).values(**record.values()))


async def update_notice(session: AsyncSession, notice_id: str, **values: Any) -> None:
    """Change columns of a notice row."""
    await session.execute(sa.update(notices).where(notices.c.id == notice_id).values(**values))


@dataclass(frozen=True)
class NoticeFilters:
    """What `GET /v1/notices` narrows by; None means any."""

    source_key: str | None = None
    status: str | None = None
    operation_type: str | None = None
    state: str | None = None
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


async def list_notices(
    session: AsyncSession,
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
    return [_notice(row) for row in await session.execute(query)]


async def notices_due_for_expiry(
    session: AsyncSession, *, ended_before: datetime, limit: int
) -> list[NoticeRecord]:
    """Open notices whose window ended before `ended_before`, locked (others skip them)."""
    query = (
        sa.select(notices)
        .where(notices.c.state.in_(("received", "updated")), notices.c.window_end <= ended_before)
        .order_by(notices.c.window_end)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_notice(row) for row in await session.execute(query)]


async def notices_due_for_purge(
    session: AsyncSession, *, closed_before: datetime, limit: int
) -> list[NoticeRecord]:
    """Closed notices whose restricted detail is still held past retention, locked."""
    query = (
        sa.select(notices)
        .where(
            notices.c.state.in_(("cancelled", "expired")),
            notices.c.closed_at <= closed_before,
            notices.c.restricted_purged_at.is_(None),
        )
        .order_by(notices.c.closed_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_notice(row) for row in await session.execute(query)]


# --- versions ----------------------------------------------------------------------


async def insert_version(session: AsyncSession, record: VersionRecord) -> None:
    """Add a version row."""
    await session.execute(sa.insert(notice_versions).values(**record.values()))


async def get_versions(session: AsyncSession, notice_id: str) -> list[VersionRecord]:
    """Every version of a notice, oldest first."""
    rows = await session.execute(
        sa.select(notice_versions)
        .where(notice_versions.c.notice_id == notice_id)
        .order_by(notice_versions.c.version)
    )
    return [_version(row) for row in rows]


async def get_version(session: AsyncSession, notice_id: str, version: int) -> VersionRecord | None:
    """One version of a notice."""
    row = (
        await session.execute(
            sa.select(notice_versions).where(
                notice_versions.c.notice_id == notice_id, notice_versions.c.version == version
            )
        )
    ).one_or_none()
    return _version(row) if row is not None else None


async def purge_versions(session: AsyncSession, notice_id: str) -> int:
    """Drop the sealed restricted detail of every version; returns how many held some."""
    result = await session.execute(
        sa.update(notice_versions)
        .where(
            notice_versions.c.notice_id == notice_id,
            notice_versions.c.restricted_sealed.is_not(None),
        )
        .values(restricted_sealed=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- idempotency keys and signature replays ----------------------------------------------


async def get_idempotency_key(
    session: AsyncSession, *, source_key: str, key: str
) -> StoredIdempotencyKey | None:
    """What a source's Idempotency-Key was first used for."""
    row = (
        await session.execute(
            sa.select(
                idempotency_keys.c.operation,
                idempotency_keys.c.notice_id,
                idempotency_keys.c.content_digest,
            ).where(
                idempotency_keys.c.source_key == source_key,
                idempotency_keys.c.idempotency_key == key,
            )
        )
    ).one_or_none()
    if row is None:
        return None
    return StoredIdempotencyKey(row.operation, row.notice_id, row.content_digest)


async def save_idempotency_key(
    session: AsyncSession,
    *,
    source_key: str,
    key: str,
    operation: str,
    notice_id: str,
    digest: str,
    now: datetime,
) -> None:
    """Remember what an Idempotency-Key was used for."""
    await session.execute(
        sa.insert(idempotency_keys).values(
            source_key=source_key,
            idempotency_key=key,
            operation=operation,
            notice_id=notice_id,
            content_digest=digest,
            created_at=now,
        )
    )


async def record_signature(
    session: AsyncSession, *, fingerprint: str, signed_at: datetime, now: datetime
) -> bool:
    """Remember a signed request; False when it was seen before (a replay)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(signature_replays)
        .values(fingerprint=fingerprint, signed_at=signed_at, seen_at=now)
        .on_conflict_do_nothing(index_elements=["fingerprint"])
        .returning(signature_replays.c.fingerprint)
    )
    return (await session.execute(statement)).first() is not None


async def delete_replays_before(session: AsyncSession, cutoff: datetime) -> int:
    """Forget signed requests seen before `cutoff` (too old to verify again anyway)."""
    result = await session.execute(
        sa.delete(signature_replays).where(signature_replays.c.seen_at < cutoff)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_idempotency_keys_before(session: AsyncSession, cutoff: datetime) -> int:
    """Forget Idempotency-Keys used before `cutoff`."""
    result = await session.execute(
        sa.delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff)
    )
    return int(getattr(result, "rowcount", 0) or 0)
