"""SQL of rumor_control: rows in and out of its own tables, as plain dataclasses.

Functions take the caller's session and never commit: the use case owns the transaction.
Ids are stored as strings (36 characters) so SQLite and PostgreSQL read them alike, and
SQLite's naive datetimes are read back as UTC.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.base import Status
from services.rumor_control.domain import Actor
from services.rumor_control.tables import (
    audit_log,
    bulletin_versions,
    bulletins,
    deliveries,
    notices,
    receipts,
    rumor_reports,
    rumors,
    standby_requests,
)

__all__ = [
    "AuditEntry",
    "BulletinRow",
    "DeliveryRow",
    "NoticeRow",
    "ReceiptRow",
    "ReportRow",
    "RumorRow",
    "VersionRow",
    "aware",
]


def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _when(value: datetime | None) -> datetime:
    result = aware(value)
    assert result is not None
    return result


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


# -- notices ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeRow:
    """The local projection of one notice."""

    notice_id: uuid.UUID
    version: int
    status: Status
    area: str | None
    area_code: str | None
    window_start: datetime | None
    window_end: datetime | None
    cancelled_at: datetime | None
    fingerprints: frozenset[str]
    key_ids: frozenset[str] = frozenset()


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


async def lock_notice(session: AsyncSession, notice_id: uuid.UUID) -> None:
    """Serialise this transaction with others about the same notice until it ends.

    A notice and its acknowledgement arrive on different topics and are handled at the same
    time; without this, each could miss the other's uncommitted row and no standby would be
    drafted. PostgreSQL: a transaction-scoped advisory lock. SQLite: BEGIN IMMEDIATE already
    serialises every writer.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"aviso-rumor-notice-{notice_id}"},
        )


async def get_notice(session: AsyncSession, notice_id: uuid.UUID) -> NoticeRow | None:
    """The projected notice, if its events have arrived."""
    row = (
        await session.execute(sa.select(notices).where(notices.c.notice_id == str(notice_id)))
    ).first()
    return None if row is None else _notice(row)


async def get_notices(session: AsyncSession, notice_ids: Iterable[uuid.UUID]) -> list[NoticeRow]:
    """The projected notices among `notice_ids`."""
    ids = [str(i) for i in notice_ids]
    if not ids:
        return []
    rows = await session.execute(sa.select(notices).where(notices.c.notice_id.in_(ids)))
    return [_notice(row) for row in rows]


async def recent_notices(session: AsyncSession, *, since: datetime) -> list[NoticeRow]:
    """Notices whose window ends after `since` (candidates for rumor suggestions)."""
    rows = await session.execute(
        sa.select(notices).where(
            sa.or_(notices.c.window_end.is_(None), notices.c.window_end >= since)
        )
    )
    return [_notice(row) for row in rows]


async def save_notice_version(
    session: AsyncSession,
    *,
    notice_id: uuid.UUID,
    version: int,
    status: Status,
    area: str,
    area_code: str | None,
    window_start: datetime,
    window_end: datetime,
    fingerprints: Iterable[str],
    key_id: str,
) -> None:
    """Apply a received/updated version: newest fields win, fingerprints accumulate.

    Versions may arrive out of order after a redelivery, so the releasable fields are
    replaced only by a higher version, while the fingerprints are always added.
    """
    existing = (
        await session.execute(
            sa.select(notices).where(notices.c.notice_id == str(notice_id)).with_for_update()
        )
    ).first()
    now = datetime.now(UTC)
    if existing is None:
        await session.execute(
            sa.insert(notices).values(
                notice_id=str(notice_id),
                version=version,
                status=status,
                area=area,
                area_code=area_code,
                window_start=window_start,
                window_end=window_end,
                fingerprints=sorted(set(fingerprints)),
                fingerprint_key_ids=[key_id],
                updated_at=now,
            )
        )
        return
    values: dict[str, Any] = {
        "fingerprints": sorted(set(existing.fingerprints or ()) | set(fingerprints)),
        "fingerprint_key_ids": sorted(set(existing.fingerprint_key_ids or ()) | {key_id}),
        "updated_at": now,
    }
    if version > existing.version:
        values.update(
            version=version,
            status=status,
            area=area,
            area_code=area_code,
            window_start=window_start,
            window_end=window_end,
        )
    await session.execute(
        sa.update(notices).where(notices.c.notice_id == str(notice_id)).values(**values)
    )


async def cancel_notice(
    session: AsyncSession, *, notice_id: uuid.UUID, version: int, status: Status, at: datetime
) -> None:
    """Mark a notice cancelled (creating a bare row if the cancel came first)."""
    existing = await get_notice(session, notice_id)
    if existing is None:
        await session.execute(
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
    await session.execute(
        sa.update(notices)
        .where(notices.c.notice_id == str(notice_id))
        .values(cancelled_at=at, version=max(version, existing.version), updated_at=at)
    )


async def fingerprints_of(
    session: AsyncSession, notice_ids: Iterable[uuid.UUID]
) -> tuple[frozenset[str], frozenset[str]]:
    """The union of these notices' restricted-term fingerprints, and the key ids they used."""
    found: set[str] = set()
    key_ids: set[str] = set()
    for notice in await get_notices(session, notice_ids):
        found |= notice.fingerprints
        key_ids |= notice.key_ids
    return frozenset(found), frozenset(key_ids)


async def request_standby(
    session: AsyncSession, *, notice_id: uuid.UUID, alert_id: uuid.UUID, by: uuid.UUID
) -> None:
    """Remember an acknowledgement whose notice has not arrived yet."""
    statement = (
        _insert(session)(standby_requests)
        .values(
            notice_id=str(notice_id),
            alert_id=str(alert_id),
            acknowledged_by=str(by),
            requested_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing(index_elements=["notice_id"])
    )
    await session.execute(statement)


async def take_standby_request(session: AsyncSession, notice_id: uuid.UUID) -> bool:
    """Remove a pending standby request; True if there was one."""
    result = await session.execute(
        sa.delete(standby_requests).where(standby_requests.c.notice_id == str(notice_id))
    )
    return bool(getattr(result, "rowcount", 0))


# -- rumors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RumorRow:
    """One rumor of the ledger."""

    rumor_id: uuid.UUID
    status: Status
    area_code: str | None
    area: str | None
    place_key: str | None
    report_count: int
    channels: tuple[str, ...]
    first_reported_at: datetime
    last_reported_at: datetime
    first_observed_at: datetime
    last_observed_at: datetime
    assessment: str | None
    assessment_revision: int
    as_of: datetime | None
    expires_at: datetime | None
    assessed_by: uuid.UUID | None
    assessed_by_name: str | None
    linked_notice_ids: tuple[uuid.UUID, ...]


def _rumor(row: Any) -> RumorRow:
    return RumorRow(
        rumor_id=uuid.UUID(row.rumor_id),
        status=row.status,
        area_code=row.area_code,
        area=row.area,
        place_key=row.place_key,
        report_count=row.report_count,
        channels=tuple(row.channels or ()),
        first_reported_at=_when(row.first_reported_at),
        last_reported_at=_when(row.last_reported_at),
        first_observed_at=_when(row.first_observed_at),
        last_observed_at=_when(row.last_observed_at),
        assessment=row.assessment,
        assessment_revision=row.assessment_revision,
        as_of=aware(row.as_of),
        expires_at=aware(row.expires_at),
        assessed_by=_uuid(row.assessed_by),
        assessed_by_name=row.assessed_by_name,
        linked_notice_ids=tuple(uuid.UUID(i) for i in row.linked_notice_ids or ()),
    )


async def rumor_candidates(
    session: AsyncSession,
    *,
    status: Status,
    area_code: str | None,
    place_key: str,
    observed_at: datetime,
    window: timedelta,
) -> list[RumorRow]:
    """Rumors of the same place and status whose times lie near `observed_at`, locked."""
    place = (
        rumors.c.area_code == area_code
        if area_code is not None
        else sa.and_(rumors.c.area_code.is_(None), rumors.c.place_key == place_key)
    )
    statement = (
        sa.select(rumors)
        .where(
            rumors.c.status == status,
            place,
            rumors.c.last_observed_at >= observed_at - window,
            rumors.c.first_observed_at <= observed_at + window,
        )
        .order_by(rumors.c.first_reported_at)
        .with_for_update()
    )
    return [_rumor(row) for row in await session.execute(statement)]


async def insert_rumor(
    session: AsyncSession,
    *,
    rumor_id: uuid.UUID,
    status: Status,
    area_code: str | None,
    area: str | None,
    place_key: str,
    channel: str,
    reported_at: datetime,
    observed_at: datetime,
) -> None:
    """Open a rumor with its first report."""
    await session.execute(
        sa.insert(rumors).values(
            rumor_id=str(rumor_id),
            status=status,
            area_code=area_code,
            area=area,
            place_key=place_key,
            report_count=1,
            channels=[channel],
            first_reported_at=reported_at,
            last_reported_at=reported_at,
            first_observed_at=observed_at,
            last_observed_at=observed_at,
            assessment_revision=0,
            linked_notice_ids=[],
        )
    )


async def add_report_to_rumor(
    session: AsyncSession,
    rumor: RumorRow,
    *,
    channel: str,
    reported_at: datetime,
    observed_at: datetime,
) -> RumorRow:
    """Count one more report in a rumor; returns the updated rumor."""
    values = {
        "report_count": rumor.report_count + 1,
        "channels": sorted({*rumor.channels, channel}),
        "last_reported_at": max(rumor.last_reported_at, reported_at),
        "first_observed_at": min(rumor.first_observed_at, observed_at),
        "last_observed_at": max(rumor.last_observed_at, observed_at),
    }
    await session.execute(
        sa.update(rumors).where(rumors.c.rumor_id == str(rumor.rumor_id)).values(**values)
    )
    return (await get_rumor(session, rumor.rumor_id)) or rumor


async def get_rumor(
    session: AsyncSession, rumor_id: uuid.UUID, *, for_update: bool = False
) -> RumorRow | None:
    """One rumor."""
    statement = sa.select(rumors).where(rumors.c.rumor_id == str(rumor_id))
    if for_update:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).first()
    return None if row is None else _rumor(row)


async def list_rumors(session: AsyncSession, *, limit: int = 200) -> list[RumorRow]:
    """The most recently reported rumors first."""
    rows = await session.execute(
        sa.select(rumors).order_by(rumors.c.last_reported_at.desc()).limit(limit)
    )
    return [_rumor(row) for row in rows]


async def assess(
    session: AsyncSession,
    rumor: RumorRow,
    *,
    assessment: str,
    as_of: datetime,
    expires_at: datetime,
    actor: Actor,
    linked_notice_ids: Sequence[uuid.UUID],
) -> RumorRow:
    """Record a vetter's assessment as the rumor's new revision."""
    await session.execute(
        sa.update(rumors)
        .where(rumors.c.rumor_id == str(rumor.rumor_id))
        .values(
            assessment=assessment,
            assessment_revision=rumor.assessment_revision + 1,
            as_of=as_of,
            expires_at=expires_at,
            assessed_by=str(actor.id),
            assessed_by_name=actor.name,
            linked_notice_ids=sorted(str(i) for i in set(linked_notice_ids)),
        )
    )
    return (await get_rumor(session, rumor.rumor_id)) or rumor


@dataclass(frozen=True)
class ReportRow:
    """One report as heard (stays in rumor_control)."""

    report_id: uuid.UUID
    rumor_id: uuid.UUID
    claim: str
    place_as_heard: str
    channel: str
    organisation: str | None
    language: str | None
    reporter_name: str
    observed_at: datetime | None
    reported_at: datetime


async def insert_report(
    session: AsyncSession, report: ReportRow, *, reporter_id: uuid.UUID
) -> None:
    """Store one report."""
    await session.execute(
        sa.insert(rumor_reports).values(
            report_id=str(report.report_id),
            rumor_id=str(report.rumor_id),
            claim=report.claim,
            place_as_heard=report.place_as_heard,
            channel=report.channel,
            organisation=report.organisation,
            language=report.language,
            reporter_id=str(reporter_id),
            reporter_name=report.reporter_name,
            observed_at=report.observed_at,
            reported_at=report.reported_at,
        )
    )


async def reports_of(session: AsyncSession, rumor_id: uuid.UUID) -> list[ReportRow]:
    """A rumor's reports, oldest first."""
    rows = await session.execute(
        sa.select(rumor_reports)
        .where(rumor_reports.c.rumor_id == str(rumor_id))
        .order_by(rumor_reports.c.reported_at)
    )
    return [
        ReportRow(
            report_id=uuid.UUID(row.report_id),
            rumor_id=uuid.UUID(row.rumor_id),
            claim=row.claim,
            place_as_heard=row.place_as_heard,
            channel=row.channel,
            organisation=row.organisation,
            language=row.language,
            reporter_name=row.reporter_name,
            observed_at=aware(row.observed_at),
            reported_at=_when(row.reported_at),
        )
        for row in rows
    ]


# -- bulletins ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulletinRow:
    """A bulletin across its versions."""

    bulletin_id: uuid.UUID
    kind: str
    status: Status
    state: str
    current_version: int
    template_id: str
    rumor_id: uuid.UUID | None
    notice_ids: tuple[uuid.UUID, ...]
    area_code: str | None
    first_reported_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _bulletin(row: Any) -> BulletinRow:
    return BulletinRow(
        bulletin_id=uuid.UUID(row.bulletin_id),
        kind=row.kind,
        status=row.status,
        state=row.state,
        current_version=row.current_version,
        template_id=row.template_id,
        rumor_id=_uuid(row.rumor_id),
        notice_ids=tuple(uuid.UUID(i) for i in row.notice_ids or ()),
        area_code=row.area_code,
        first_reported_at=aware(row.first_reported_at),
        created_at=_when(row.created_at),
        updated_at=_when(row.updated_at),
    )


@dataclass(frozen=True)
class VersionRow:
    """One version of a bulletin: its texts, guardrail findings and vetting."""

    bulletin_id: uuid.UUID
    version: int
    msg_type: str
    references: tuple[str, ...]
    state: str
    revision: int
    texts: Mapping[str, Mapping[str, str]]
    findings: tuple[Mapping[str, Any], ...]
    blocked_reasons: tuple[str, ...]
    channels: tuple[str, ...]
    signoffs: Mapping[str, Mapping[str, str]]
    author_id: uuid.UUID | None
    author_name: str | None
    drafted_at: datetime
    approved_by: uuid.UUID | None = None
    approved_at: datetime | None = None
    published_at: datetime | None = None
    expires_at: datetime | None = None
    rejected_by: uuid.UUID | None = None
    rejected_at: datetime | None = None
    reason_codes: tuple[str, ...] = field(default_factory=tuple)


def _version(row: Any, prefix: str = "") -> VersionRow:
    values = row._mapping

    def get(name: str) -> Any:
        return values[prefix + name]

    return VersionRow(
        bulletin_id=uuid.UUID(get("bulletin_id")),
        version=get("version"),
        msg_type=get("msg_type"),
        references=tuple(get("refs") or ()),
        state=get("state"),
        revision=get("revision"),
        texts=get("texts"),
        findings=tuple(get("findings") or ()),
        blocked_reasons=tuple(get("blocked_reasons") or ()),
        channels=tuple(get("channels") or ()),
        signoffs=get("signoffs") or {},
        author_id=_uuid(get("author_id")),
        author_name=get("author_name"),
        drafted_at=_when(get("drafted_at")),
        approved_by=_uuid(get("approved_by")),
        approved_at=aware(get("approved_at")),
        published_at=aware(get("published_at")),
        expires_at=aware(get("expires_at")),
        rejected_by=_uuid(get("rejected_by")),
        rejected_at=aware(get("rejected_at")),
        reason_codes=tuple(get("reason_codes") or ()),
    )


# Joined reads label the version's columns "v_*": both tables have bulletin_id and state.
_JOINED = (*bulletins.c, *(column.label(f"v_{column.name}") for column in bulletin_versions.c))


async def insert_bulletin(
    session: AsyncSession,
    *,
    bulletin_id: uuid.UUID,
    kind: str,
    status: Status,
    template_id: str,
    rumor_id: uuid.UUID | None,
    notice_ids: Sequence[uuid.UUID],
    area_code: str | None,
    standby_for_notice: uuid.UUID | None,
    first_reported_at: datetime | None,
    now: datetime,
) -> None:
    """Create a bulletin whose version 1 follows."""
    await session.execute(
        sa.insert(bulletins).values(
            bulletin_id=str(bulletin_id),
            kind=kind,
            status=status,
            state="drafted",
            current_version=1,
            template_id=template_id,
            rumor_id=None if rumor_id is None else str(rumor_id),
            notice_ids=sorted(str(i) for i in set(notice_ids)),
            area_code=area_code,
            standby_for_notice=None if standby_for_notice is None else str(standby_for_notice),
            first_reported_at=first_reported_at,
            created_at=now,
            updated_at=now,
        )
    )


async def insert_version(
    session: AsyncSession,
    *,
    bulletin_id: uuid.UUID,
    version: int,
    msg_type: str,
    references: Sequence[str],
    state: str,
    texts: Mapping[str, Mapping[str, str]],
    findings: Sequence[Mapping[str, Any]],
    blocked_reasons: Sequence[str],
    channels: Sequence[str],
    author: Actor | None,
    now: datetime,
    **published: Any,
) -> None:
    """Add a version (drafts, and retractions which are published at once)."""
    await session.execute(
        sa.insert(bulletin_versions).values(
            bulletin_id=str(bulletin_id),
            version=version,
            msg_type=msg_type,
            refs=list(references),
            state=state,
            revision=1,
            texts=dict(texts),
            findings=list(findings),
            blocked_reasons=list(blocked_reasons),
            channels=list(channels),
            signoffs={},
            author_id=None if author is None else str(author.id),
            author_name=None if author is None else author.name,
            drafted_at=now,
            reason_codes=[],
            **published,
        )
    )


async def standby_for(session: AsyncSession, notice_id: uuid.UUID) -> uuid.UUID | None:
    """The standby bulletin drafted for a notice, if any."""
    row = (
        await session.execute(
            sa.select(bulletins.c.bulletin_id).where(
                bulletins.c.standby_for_notice == str(notice_id)
            )
        )
    ).first()
    return None if row is None else uuid.UUID(row.bulletin_id)


async def get_bulletin(
    session: AsyncSession, bulletin_id: uuid.UUID, *, for_update: bool = False
) -> BulletinRow | None:
    """One bulletin (locked for the rest of the transaction with `for_update`)."""
    statement = sa.select(bulletins).where(bulletins.c.bulletin_id == str(bulletin_id))
    if for_update:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).first()
    return None if row is None else _bulletin(row)


async def versions_of(session: AsyncSession, bulletin_id: uuid.UUID) -> list[VersionRow]:
    """Every version of a bulletin, oldest first."""
    rows = await session.execute(
        sa.select(bulletin_versions)
        .where(bulletin_versions.c.bulletin_id == str(bulletin_id))
        .order_by(bulletin_versions.c.version)
    )
    return [_version(row) for row in rows]


async def update_version(
    session: AsyncSession, bulletin_id: uuid.UUID, version: int, **values: Any
) -> None:
    """Change columns of one version."""
    await session.execute(
        sa.update(bulletin_versions)
        .where(
            bulletin_versions.c.bulletin_id == str(bulletin_id),
            bulletin_versions.c.version == version,
        )
        .values(**values)
    )


async def update_bulletin(session: AsyncSession, bulletin_id: uuid.UUID, **values: Any) -> None:
    """Change columns of the bulletin row."""
    await session.execute(
        sa.update(bulletins)
        .where(bulletins.c.bulletin_id == str(bulletin_id))
        .values(updated_at=datetime.now(UTC), **values)
    )


async def list_bulletins(
    session: AsyncSession, *, states: Sequence[str] | None = None, limit: int = 200
) -> list[tuple[BulletinRow, VersionRow]]:
    """Bulletins with their latest version, most recently changed first."""
    statement = (
        sa.select(*_JOINED)
        .select_from(bulletins)
        .join(
            bulletin_versions,
            sa.and_(
                bulletin_versions.c.bulletin_id == bulletins.c.bulletin_id,
                bulletin_versions.c.version == bulletins.c.current_version,
            ),
        )
        .order_by(bulletins.c.updated_at.desc())
        .limit(limit)
    )
    if states is not None:
        statement = statement.where(bulletins.c.state.in_(states))
    rows = await session.execute(statement)
    return [(_bulletin(row), _version(row, "v_")) for row in rows]


async def public_versions(
    session: AsyncSession, *, limit: int = 200
) -> list[tuple[BulletinRow, VersionRow]]:
    """Published versions of real (non-drill) bulletins, newest first: what the feeds show."""
    rows = await session.execute(
        sa.select(*_JOINED)
        .select_from(bulletins)
        .join(bulletin_versions, bulletin_versions.c.bulletin_id == bulletins.c.bulletin_id)
        .where(bulletin_versions.c.state == "published", bulletins.c.status == "Actual")
        .order_by(bulletin_versions.c.published_at.desc())
        .limit(limit)
    )
    return [(_bulletin(row), _version(row, "v_")) for row in rows]


# -- audit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """One step on a timeline."""

    at: datetime
    aggregate: str
    aggregate_id: uuid.UUID
    version: int | None
    action: str
    actor_id: uuid.UUID | None
    actor_name: str | None
    actor_role: str | None
    detail: Mapping[str, Any]


async def record(
    session: AsyncSession,
    *,
    aggregate: str,
    aggregate_id: uuid.UUID,
    action: str,
    actor: Actor | None,
    version: int | None = None,
    detail: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Append one step to the audit log (ids and reason codes only, never text)."""
    await session.execute(
        sa.insert(audit_log).values(
            at=at or datetime.now(UTC),
            aggregate=aggregate,
            aggregate_id=str(aggregate_id),
            version=version,
            action=action,
            actor_id=None if actor is None else str(actor.id),
            actor_name=None if actor is None else actor.name,
            actor_role=None if actor is None else actor.role,
            detail=dict(detail or {}),
        )
    )


async def timeline(
    session: AsyncSession, *, aggregate: str, aggregate_id: uuid.UUID
) -> list[AuditEntry]:
    """Every step of one rumor or bulletin, in order."""
    rows = await session.execute(
        sa.select(audit_log)
        .where(audit_log.c.aggregate == aggregate, audit_log.c.aggregate_id == str(aggregate_id))
        .order_by(audit_log.c.id)
    )
    return [
        AuditEntry(
            at=_when(row.at),
            aggregate=row.aggregate,
            aggregate_id=uuid.UUID(row.aggregate_id),
            version=row.version,
            action=row.action,
            actor_id=_uuid(row.actor_id),
            actor_name=row.actor_name,
            actor_role=row.actor_role,
            detail=row.detail or {},
        )
        for row in rows
    ]


# -- deliveries and receipts ----------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRow:
    """The outcome of one delivery."""

    delivery_id: uuid.UUID
    bulletin_id: uuid.UUID
    version: int
    recipient_id: uuid.UUID
    channel: str
    language: str
    purpose: str
    outcome: str
    error: str | None
    attempted_at: datetime


async def delivery_done(session: AsyncSession, delivery_id: uuid.UUID) -> bool:
    """Whether this delivery already has an outcome (sent, failed or skipped)."""
    row = (
        await session.execute(
            sa.select(deliveries.c.delivery_id).where(deliveries.c.delivery_id == str(delivery_id))
        )
    ).first()
    return row is not None


async def insert_delivery(session: AsyncSession, delivery: DeliveryRow) -> None:
    """Record a delivery's outcome (unique on delivery_id)."""
    statement = (
        _insert(session)(deliveries)
        .values(
            delivery_id=str(delivery.delivery_id),
            bulletin_id=str(delivery.bulletin_id),
            version=delivery.version,
            recipient_id=str(delivery.recipient_id),
            channel=delivery.channel,
            language=delivery.language,
            purpose=delivery.purpose,
            outcome=delivery.outcome,
            error=delivery.error,
            attempted_at=delivery.attempted_at,
        )
        .on_conflict_do_nothing(index_elements=["delivery_id"])
    )
    await session.execute(statement)


async def deliveries_of(session: AsyncSession, bulletin_id: uuid.UUID) -> list[DeliveryRow]:
    """A bulletin's deliveries, oldest first."""
    rows = await session.execute(
        sa.select(deliveries)
        .where(deliveries.c.bulletin_id == str(bulletin_id))
        .order_by(deliveries.c.attempted_at)
    )
    return [
        DeliveryRow(
            delivery_id=uuid.UUID(row.delivery_id),
            bulletin_id=uuid.UUID(row.bulletin_id),
            version=row.version,
            recipient_id=uuid.UUID(row.recipient_id),
            channel=row.channel,
            language=row.language,
            purpose=row.purpose,
            outcome=row.outcome,
            error=row.error,
            attempted_at=_when(row.attempted_at),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class ReceiptRow:
    """Who has read which version."""

    bulletin_id: uuid.UUID
    version: int
    recipient_id: uuid.UUID
    first_seen_at: datetime
    last_seen_at: datetime
    seen_count: int


async def save_receipt(
    session: AsyncSession,
    *,
    bulletin_id: uuid.UUID,
    version: int,
    recipient_id: uuid.UUID,
    at: datetime,
) -> bool:
    """Record that a recipient opened a version; True the first time."""
    key = (
        receipts.c.bulletin_id == str(bulletin_id),
        receipts.c.version == version,
        receipts.c.recipient_id == str(recipient_id),
    )
    existing = (await session.execute(sa.select(receipts).where(*key).with_for_update())).first()
    if existing is not None:
        await session.execute(
            sa.update(receipts)
            .where(*key)
            .values(last_seen_at=at, seen_count=existing.seen_count + 1)
        )
        return False
    statement = (
        _insert(session)(receipts)
        .values(
            bulletin_id=str(bulletin_id),
            version=version,
            recipient_id=str(recipient_id),
            first_seen_at=at,
            last_seen_at=at,
            seen_count=1,
        )
        .on_conflict_do_nothing(index_elements=["bulletin_id", "version", "recipient_id"])
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def receipts_of(session: AsyncSession, bulletin_id: uuid.UUID) -> list[ReceiptRow]:
    """Receipts of every version of a bulletin."""
    rows = await session.execute(
        sa.select(receipts)
        .where(receipts.c.bulletin_id == str(bulletin_id))
        .order_by(receipts.c.version, receipts.c.first_seen_at)
    )
    return [
        ReceiptRow(
            bulletin_id=uuid.UUID(row.bulletin_id),
            version=row.version,
            recipient_id=uuid.UUID(row.recipient_id),
            first_seen_at=_when(row.first_seen_at),
            last_seen_at=_when(row.last_seen_at),
            seen_count=row.seen_count,
        )
        for row in rows
    ]
