"""One row per delivery id: the proof a message went out (or why it did not)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.repository._sql import is_postgres
from services.router.tables import alert_deliveries

__all__ = ["DeliveryClaim", "DeliveryOutcome", "SqlDeliveryRepository"]

DeliveryOutcome = Literal["sending", "skipped", "delivered", "failed"]


@dataclass(frozen=True)
class DeliveryClaim:
    """What a claimed delivery is about (the columns of its row)."""

    delivery_id: uuid.UUID
    alert_id: uuid.UUID
    notice_version: int
    purpose: str
    recipient_id: uuid.UUID
    channel: str


class SqlDeliveryRepository:
    """Delivery claims in the caller's transaction (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(self, claim: DeliveryClaim, *, outcome: DeliveryOutcome, at: datetime) -> bool:
        """Record a delivery; False when this delivery id was already recorded (do not send).

        On PostgreSQL a concurrent claim of the same id waits for the first transaction and
        then sees the conflict, so two adapters never both send it.
        """
        insert = postgresql.insert if is_postgres(self._session) else sqlite.insert
        statement = (
            insert(alert_deliveries)
            .values(
                delivery_id=str(claim.delivery_id),
                alert_id=str(claim.alert_id),
                notice_version=claim.notice_version,
                purpose=claim.purpose,
                recipient_id=str(claim.recipient_id),
                channel=claim.channel,
                outcome=outcome,
                attempts=0,
                at=at,
            )
            .on_conflict_do_nothing(index_elements=["delivery_id"])
            .returning(alert_deliveries.c.delivery_id)
        )
        return (await self._session.execute(statement)).first() is not None

    async def finish(
        self,
        delivery_id: uuid.UUID,
        *,
        outcome: DeliveryOutcome,
        attempts: int,
        at: datetime,
        error: str | None = None,
    ) -> None:
        """Record how a claimed delivery ended."""
        await self._session.execute(
            sa.update(alert_deliveries)
            .where(alert_deliveries.c.delivery_id == str(delivery_id))
            .values(outcome=outcome, attempts=attempts, at=at, error=error)
        )
