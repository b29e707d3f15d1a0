"""Router's data access: directory versions, alerts (with their timers), timeline, deliveries.

Functions take the caller's session and never commit: the use case in `service.py` owns
the transaction. Times are UTC; SQLite hands datetimes back naive, so reads re-attach UTC.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.base import Status
from services.router.domain import (
    OPEN_STATES,
    DirectoryDocument,
    EscalationPosition,
    NoticeContent,
    Snapshot,
)
from services.router.tables import alert_deliveries, alert_timeline, alerts, directory_versions

__all__ = [
    "AlertRecord",
    "DirectoryVersion",
    "TimelineEntry",
    "add_timeline",
    "advance_state",
    "claim_delivery",
    "claim_due_expiry",
    "claim_due_timer",
    "count_alerts_by_state",
    "current_directory",
    "finish_delivery",
    "get_alert",
    "guarded_update",
    "insert_alert",
    "insert_directory",
    "last_file_digest",
    "list_alerts",
    "next_deadline",
    "notified_entry",
    "notified_recipients",
    "read_timeline",
    "update_alert",
]


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _must(value: datetime | None) -> datetime:
    aware = _aware(value)
    assert aware is not None
    return aware


def _is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --- directory ----------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryVersion:
    """One stored directory."""

    version: int
    document: DirectoryDocument
    digest: str
    source: str
    created_by: str
    created_at: datetime


async def current_directory(session: AsyncSession) -> DirectoryVersion | None:
    """The directory in force (the highest version), if any was ever stored."""
    row = (
        await session.execute(
            sa.select(directory_versions).order_by(directory_versions.c.version.desc()).limit(1)
        )
    ).first()
    if row is None:
        return None
    return DirectoryVersion(
        version=row.version,
        document=DirectoryDocument.model_validate(row.document),
        digest=row.digest,
        source=row.source,
        created_by=row.created_by,
        created_at=_must(row.created_at),
    )


async def last_file_digest(session: AsyncSession) -> str | None:
    """Digest of the directory most recently loaded from a file."""
    result = await session.execute(
        sa.select(directory_versions.c.digest)
        .where(directory_versions.c.source == "file")
        .order_by(directory_versions.c.version.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def insert_directory(
    session: AsyncSession,
    *,
    version: int,
    document: DirectoryDocument,
    digest: str,
    source: str,
    created_by: str,
    at: datetime,
) -> None:
    """Store `document` as `version` (fails on a concurrent writer of the same version)."""
    await session.execute(
        sa.insert(directory_versions).values(
            version=version,
            document=document.model_dump(mode="json"),
            digest=digest,
            source=source,
            created_by=created_by,
            created_at=at,
        )
    )


# --- alerts -------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertRecord:
    """An alert row, typed."""

    id: uuid.UUID
    notice_id: uuid.UUID
    notice_version: int
    status: Status
    state: str
    urgency: str
    content: NoticeContent
    snapshot: Snapshot
    step: int
    repeat: int
    escalation_count: int
    next_fire_at: datetime | None
    active_escalation_id: str | None
    correlation_id: str | None
    triggered_at: datetime
    version_triggered_at: datetime
    acknowledged_version: int | None
    acknowledged_by: uuid.UUID | None
    acknowledged_at: datetime | None
    ack_method: str | None
    exhausted_at: datetime | None
    expires_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    updated_at: datetime

    @property
    def position(self) -> EscalationPosition:
        return EscalationPosition(self.repeat, self.step)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


def _record(row: Any) -> AlertRecord:
    return AlertRecord(
        id=uuid.UUID(row.id),
        notice_id=uuid.UUID(row.notice_id),
        notice_version=row.notice_version,
        status=cast(Status, row.status),
        state=row.state,
        urgency=row.urgency,
        content=NoticeContent.model_validate(row.content),
        snapshot=Snapshot.model_validate(row.snapshot),
        step=row.step,
        repeat=row.repeat,
        escalation_count=row.escalation_count,
        next_fire_at=_aware(row.next_fire_at),
        active_escalation_id=row.active_escalation_id,
        correlation_id=row.correlation_id,
        triggered_at=_must(row.triggered_at),
        version_triggered_at=_must(row.version_triggered_at),
        acknowledged_version=row.acknowledged_version,
        acknowledged_by=uuid.UUID(row.acknowledged_by) if row.acknowledged_by else None,
        acknowledged_at=_aware(row.acknowledged_at),
        ack_method=row.ack_method,
        exhausted_at=_aware(row.exhausted_at),
        expires_at=_must(row.expires_at),
        resolved_at=_aware(row.resolved_at),
        resolution=row.resolution,
        updated_at=_must(row.updated_at),
    )


def _db_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values to column values (UUIDs as text, models as JSON)."""
    converted: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, NoticeContent | Snapshot):
            value = value.model_dump(mode="json")
        converted[key] = value
    return converted


async def get_alert(
    session: AsyncSession,
    *,
    alert_id: uuid.UUID | None = None,
    notice_id: uuid.UUID | None = None,
    lock: bool = False,
) -> AlertRecord | None:
    """One alert by id or by notice id; `lock` holds its row until the transaction ends."""
    query = sa.select(alerts)
    if alert_id is not None:
        query = query.where(alerts.c.id == str(alert_id))
    elif notice_id is not None:
        query = query.where(alerts.c.notice_id == str(notice_id))
    else:
        raise ValueError("give alert_id or notice_id")
    if lock:
        # Acknowledgement, updates and the timer serialise on this lock (PostgreSQL);
        # SQLite's BEGIN IMMEDIATE already serialises every writing transaction.
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return _record(row) if row is not None else None


async def insert_alert(session: AsyncSession, **values: Any) -> None:
    """Insert a new alert row."""
    await session.execute(sa.insert(alerts).values(**_db_values(values)))


async def update_alert(session: AsyncSession, alert_id: uuid.UUID, **values: Any) -> None:
    """Set columns of one alert."""
    await session.execute(
        sa.update(alerts).where(alerts.c.id == str(alert_id)).values(**_db_values(values))
    )


async def advance_state(
    session: AsyncSession,
    alert_id: uuid.UUID,
    *,
    from_states: Iterable[str],
    notice_version: int,
    **values: Any,
) -> bool:
    """Move the alert on only from `from_states` and only for `notice_version`."""
    result = await session.execute(
        sa.update(alerts)
        .where(
            alerts.c.id == str(alert_id),
            alerts.c.state.in_(list(from_states)),
            alerts.c.notice_version == notice_version,
        )
        .values(**_db_values(values))
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def guarded_update(
    session: AsyncSession,
    alert_id: uuid.UUID,
    *,
    expected_escalation_id: str | None,
    expected_states: Iterable[str],
    **values: Any,
) -> bool:
    """Update only if the alert still carries `expected_escalation_id` and a listed state.

    The compare-and-set that makes a timer fire once: a second router that read the
    same due row, or a stale run after an ack or a notice update, matches no row.
    """
    escalation = (
        alerts.c.active_escalation_id.is_(None)
        if expected_escalation_id is None
        else alerts.c.active_escalation_id == expected_escalation_id
    )
    result = await session.execute(
        sa.update(alerts)
        .where(alerts.c.id == str(alert_id), escalation, alerts.c.state.in_(list(expected_states)))
        .values(**_db_values(values))
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def claim_due_timer(
    session: AsyncSession, *, now: datetime, skip: Sequence[str] = ()
) -> tuple[uuid.UUID, str | None] | None:
    """The most overdue open alert nobody else is firing, locked; None when none is due.

    PostgreSQL: `FOR UPDATE SKIP LOCKED`, so two routers each take a different alert
    and neither waits for the other. SQLite: the transaction began IMMEDIATE and holds
    the database's write lock, so no other process can read-then-fire the same row.
    """
    query = (
        sa.select(alerts.c.id, alerts.c.active_escalation_id)
        .where(
            alerts.c.next_fire_at.is_not(None),
            alerts.c.next_fire_at <= now,
            alerts.c.state.in_(sorted(OPEN_STATES)),
        )
        .order_by(alerts.c.next_fire_at)
        .limit(1)
    )
    if skip:
        query = query.where(alerts.c.id.not_in(list(skip)))
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    row = (await session.execute(query)).first()
    return (uuid.UUID(row.id), row.active_escalation_id) if row is not None else None


async def claim_due_expiry(
    session: AsyncSession, *, now: datetime, skip: Sequence[str] = ()
) -> uuid.UUID | None:
    """An unresolved alert whose operation window has ended, locked like a timer."""
    query = (
        sa.select(alerts.c.id)
        .where(alerts.c.state != "resolved", alerts.c.expires_at <= now)
        .order_by(alerts.c.expires_at)
        .limit(1)
    )
    if skip:
        query = query.where(alerts.c.id.not_in(list(skip)))
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    row = (await session.execute(query)).first()
    return uuid.UUID(row.id) if row is not None else None


async def next_deadline(session: AsyncSession) -> datetime | None:
    """The earliest pending timer or expiry, so the worker can sleep until then."""
    timers = sa.select(sa.func.min(alerts.c.next_fire_at)).where(
        alerts.c.state.in_(sorted(OPEN_STATES))
    )
    expiries = sa.select(sa.func.min(alerts.c.expires_at)).where(alerts.c.state != "resolved")
    # min() keeps the column's type, so SQLite's stored text comes back as a datetime.
    found = [
        _must(value)
        for value in (
            (await session.execute(timers)).scalar_one_or_none(),
            (await session.execute(expiries)).scalar_one_or_none(),
        )
        if value is not None
    ]
    return min(found) if found else None


async def list_alerts(
    session: AsyncSession, *, states: Sequence[str], limit: int, offset: int
) -> list[AlertRecord]:
    """Alerts, newest first, optionally only in `states`."""
    query = sa.select(alerts).order_by(alerts.c.triggered_at.desc(), alerts.c.id)
    if states:
        query = query.where(alerts.c.state.in_(list(states)))
    rows = await session.execute(query.limit(limit).offset(offset))
    return [_record(row) for row in rows]


async def count_alerts_by_state(session: AsyncSession) -> dict[str, int]:
    """How many alerts are in each state."""
    rows = await session.execute(
        sa.select(alerts.c.state, sa.func.count()).group_by(alerts.c.state)
    )
    return {state: int(count) for state, count in rows}


# --- timeline -------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to an alert."""

    id: int
    at: datetime
    kind: str
    notice_version: int
    step: int | None
    repeat: int | None
    recipient_id: uuid.UUID | None
    channel: str | None
    method: str | None
    delivery_id: uuid.UUID | None
    detail: dict[str, Any]

    @property
    def position(self) -> EscalationPosition | None:
        """The escalation step this entry belongs to (None for a cancellation)."""
        if self.step is None:
            return None
        return EscalationPosition(self.repeat or 0, self.step)


async def add_timeline(
    session: AsyncSession,
    *,
    alert_id: uuid.UUID,
    kind: str,
    at: datetime,
    notice_version: int,
    position: EscalationPosition | None = None,
    recipient_id: uuid.UUID | None = None,
    channel: str | None = None,
    method: str | None = None,
    delivery_id: uuid.UUID | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry to the alert's timeline."""
    await session.execute(
        sa.insert(alert_timeline).values(
            alert_id=str(alert_id),
            at=at,
            kind=kind,
            notice_version=notice_version,
            step=position.step if position else None,
            repeat=position.repeat if position else None,
            recipient_id=str(recipient_id) if recipient_id else None,
            channel=channel,
            method=method,
            delivery_id=str(delivery_id) if delivery_id else None,
            detail=dict(detail) if detail else None,
        )
    )


async def read_timeline(session: AsyncSession, alert_id: uuid.UUID) -> list[TimelineEntry]:
    """The alert's timeline in the order things happened."""
    rows = await session.execute(
        sa.select(alert_timeline)
        .where(alert_timeline.c.alert_id == str(alert_id))
        .order_by(alert_timeline.c.id)
    )
    return [_timeline_entry(row) for row in rows]


def _timeline_entry(row: Any) -> TimelineEntry:
    return TimelineEntry(
        id=row.id,
        at=_must(row.at),
        kind=row.kind,
        notice_version=row.notice_version,
        step=row.step,
        repeat=row.repeat,
        recipient_id=uuid.UUID(row.recipient_id) if row.recipient_id else None,
        channel=row.channel,
        method=row.method,
        delivery_id=uuid.UUID(row.delivery_id) if row.delivery_id else None,
        detail=dict(row.detail or {}),
    )


async def notified_entry(
    session: AsyncSession, *, alert_id: uuid.UUID, delivery_id: uuid.UUID
) -> TimelineEntry | None:
    """The "notified" record this router wrote when it requested `delivery_id`, if any."""
    row = (
        await session.execute(
            sa.select(alert_timeline)
            .where(
                alert_timeline.c.alert_id == str(alert_id),
                alert_timeline.c.delivery_id == str(delivery_id),
                alert_timeline.c.kind == "notified",
            )
            .limit(1)
        )
    ).first()
    return _timeline_entry(row) if row is not None else None


async def notified_recipients(session: AsyncSession, alert_id: uuid.UUID) -> list[uuid.UUID]:
    """Everyone a notification was requested for, in the order they were first notified."""
    rows = await session.execute(
        sa.select(alert_timeline.c.recipient_id)
        .where(
            alert_timeline.c.alert_id == str(alert_id),
            alert_timeline.c.kind == "notified",
            alert_timeline.c.recipient_id.is_not(None),
        )
        .order_by(alert_timeline.c.id)
    )
    return list(dict.fromkeys(uuid.UUID(r) for (r,) in rows))


# --- deliveries --------------------------------------------------------------------


async def claim_delivery(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    alert_id: uuid.UUID,
    notice_version: int,
    purpose: str,
    recipient_id: uuid.UUID,
    channel: str,
    outcome: str,
    at: datetime,
) -> bool:
    """Record a delivery; False when this delivery id was already recorded (do not send).

    On PostgreSQL a concurrent claim of the same id waits for the first transaction and
    then sees the conflict, so two adapters never both send it.
    """
    insert = postgresql.insert if _is_postgres(session) else sqlite.insert
    statement = (
        insert(alert_deliveries)
        .values(
            delivery_id=str(delivery_id),
            alert_id=str(alert_id),
            notice_version=notice_version,
            purpose=purpose,
            recipient_id=str(recipient_id),
            channel=channel,
            outcome=outcome,
            attempts=0,
            at=at,
        )
        .on_conflict_do_nothing(index_elements=["delivery_id"])
        .returning(alert_deliveries.c.delivery_id)
    )
    return (await session.execute(statement)).first() is not None


async def finish_delivery(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    outcome: str,
    attempts: int,
    at: datetime,
    error: str | None = None,
) -> None:
    """Record how a claimed delivery ended."""
    await session.execute(
        sa.update(alert_deliveries)
        .where(alert_deliveries.c.delivery_id == str(delivery_id))
        .values(outcome=outcome, attempts=attempts, at=at, error=error)
    )
