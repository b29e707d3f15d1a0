"""The router's delivery records (the delivery engine's table in router's schema).

The engine writes these rows (accept, claim, settle); the router asks how its
notifications stand (e.g. whether every channel of a step has failed for good) and
records the SMS gateway's delivery reports on them (`handset.apply_report`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.delivery import DeliveryState
from services.common.delivery.handset import HandsetPolicy, ReportEffect, apply_report
from services.common.delivery.sms_reports import DeliveryReport
from services.router.tables import delivery_records

__all__ = ["SqlDeliveryRepository"]


class SqlDeliveryRepository:
    """Delivery records in the caller's transaction (never commits)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def states(self, delivery_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, DeliveryState]:
        """The state of each known delivery id (unknown ids are left out)."""
        if not delivery_ids:
            return {}
        rows = await self._session.execute(
            sa.select(delivery_records.c.delivery_id, delivery_records.c.state).where(
                delivery_records.c.delivery_id.in_([str(i) for i in delivery_ids])
            )
        )
        return {uuid.UUID(d): cast(DeliveryState, state) for d, state in rows}

    async def apply_report(
        self, report: DeliveryReport, *, now: datetime, policy: HandsetPolicy
    ) -> ReportEffect | None:
        """Record a delivery report on its record (None: no such delivery here)."""
        return await apply_report(self._session, delivery_records, report, now=now, policy=policy)
