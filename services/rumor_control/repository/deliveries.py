"""Delivery outcomes and receipts: who was sent which version, and who confirmed it."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.rumor_control.domain import DeliveryRow, ReceiptRow, TimelineRecord
from services.rumor_control.repository._sql import insert_for, when
from services.rumor_control.repository.timeline import record
from services.rumor_control.tables import deliveries, receipts

__all__ = ["SqlDeliveries"]


class SqlDeliveries:
    """Deliveries (one outcome per delivery id) and receipts (one row per recipient/version)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def done(self, delivery_id: uuid.UUID) -> bool:
        """Whether this delivery already has an outcome (sent, failed or skipped)."""
        statement = sa.select(deliveries.c.delivery_id).where(
            deliveries.c.delivery_id == str(delivery_id)
        )
        return (await self._session.execute(statement)).first() is not None

    async def record_outcome(self, delivery: DeliveryRow, step: TimelineRecord | None) -> None:
        """Record a delivery's outcome (unique on delivery_id) and its timeline entry."""
        statement = (
            insert_for(self._session)(deliveries)
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
        await self._session.execute(statement)
        if step is not None:
            await record(self._session, step)

    async def of(self, bulletin_id: uuid.UUID) -> list[DeliveryRow]:
        """A bulletin's deliveries, oldest first."""
        rows = await self._session.execute(
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
                attempted_at=when(row.attempted_at),
            )
            for row in rows
        ]

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
