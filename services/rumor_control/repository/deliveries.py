"""Deliveries and receipts: who was sent which version (and how it went), who confirmed it."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.delivery.handset import HandsetPolicy, ReportEffect, apply_report
from services.common.delivery.reasons import stored_reason
from services.common.delivery.sms_reports import DeliveryReport
from services.rumor_control.domain import DeliveryRow, ReceiptRow, TimelineRecord
from services.rumor_control.repository._sql import aware, insert_for, when
from services.rumor_control.repository.timeline import record
from services.rumor_control.tables import delivery_records, receipts

__all__ = ["SqlDeliveries"]


class SqlDeliveries:
    """Delivery records (written by the delivery engine) and receipts (one row per
    recipient and version)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def of(self, bulletin_id: uuid.UUID) -> list[DeliveryRow]:
        """A bulletin's deliveries, oldest first, as their records stand."""
        t = delivery_records
        rows = await self._session.execute(
            sa.select(t)
            .where(t.c.aggregate_id == str(bulletin_id))
            .order_by(t.c.aggregate_version, t.c.created_at, t.c.delivery_id)
        )
        return [
            DeliveryRow(
                delivery_id=uuid.UUID(row.delivery_id),
                bulletin_id=uuid.UUID(row.aggregate_id),
                version=row.aggregate_version,
                recipient_id=uuid.UUID(row.recipient_id),
                channel=row.channel,
                language=row.language,
                purpose=row.purpose,
                state=row.state,
                attempts=row.attempts,
                last_failure_reason=stored_reason(row.last_error_class),
                updated_at=when(row.updated_at),
                delivered_at=aware(row.delivered_at),
                segments=row.segments,
                report=row.report,
                reported_at=aware(row.reported_at),
            )
            for row in rows
        ]

    async def apply_report(
        self, report: DeliveryReport, *, now: datetime, policy: HandsetPolicy
    ) -> ReportEffect | None:
        """Record the SMS gateway's report on its record (None: no such delivery here)."""
        return await apply_report(self._session, delivery_records, report, now=now, policy=policy)

    async def confirm_receipt(
        self,
        *,
        bulletin_id: uuid.UUID,
        version: int,
        recipient_id: uuid.UUID,
        at: datetime,
        first_step: TimelineRecord,
    ) -> bool:
        """Record that a recipient opened a version; True (and `first_step` recorded) the
        first time."""
        key = (
            receipts.c.bulletin_id == str(bulletin_id),
            receipts.c.version == version,
            receipts.c.recipient_id == str(recipient_id),
        )
        session = self._session
        existing = (
            await session.execute(sa.select(receipts).where(*key).with_for_update())
        ).first()
        if existing is not None:
            await session.execute(
                sa.update(receipts)
                .where(*key)
                .values(last_seen_at=at, seen_count=existing.seen_count + 1)
            )
            return False
        statement = (
            insert_for(session)(receipts)
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
        first = bool(getattr(await session.execute(statement), "rowcount", 0))
        if first:
            await record(session, first_step)
        return first

    async def receipts_of(self, bulletin_id: uuid.UUID) -> list[ReceiptRow]:
        """Receipts of every version of a bulletin."""
        rows = await self._session.execute(
            sa.select(receipts)
            .where(receipts.c.bulletin_id == str(bulletin_id))
            .order_by(receipts.c.version, receipts.c.first_seen_at)
        )
        return [
            ReceiptRow(
                bulletin_id=uuid.UUID(row.bulletin_id),
                version=row.version,
                recipient_id=uuid.UUID(row.recipient_id),
                first_seen_at=when(row.first_seen_at),
                last_seen_at=when(row.last_seen_at),
                seen_count=row.seen_count,
            )
            for row in rows
        ]
