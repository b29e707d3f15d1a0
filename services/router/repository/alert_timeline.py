"""The reads of an alert's timeline: all of it, one notification's record, and who was
notified (a part of `SqlAlertRepository`, which inherits them)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.domain import TimelineEntry
from services.router.repository.alert_rows import timeline_entry
from services.router.tables import alert_timeline

__all__ = ["AlertTimeline"]


class AlertTimeline:
    """Timeline reads over the repository's session (`_session`, set by the repository)."""

    _session: AsyncSession

    async def timeline(self, alert_id: uuid.UUID) -> list[TimelineEntry]:
        """The alert's timeline in the order things happened."""
        rows = await self._session.execute(
            sa.select(alert_timeline)
            .where(alert_timeline.c.alert_id == str(alert_id))
            .order_by(alert_timeline.c.id)
        )
        return [timeline_entry(row) for row in rows]

    async def notified_entry(
        self, alert_id: uuid.UUID, *, delivery_id: uuid.UUID
    ) -> TimelineEntry | None:
        """The "notified" record this router wrote when it requested `delivery_id`, if any."""
        row = (
            await self._session.execute(
                sa.select(alert_timeline)
                .where(
                    alert_timeline.c.alert_id == str(alert_id),
                    alert_timeline.c.delivery_id == str(delivery_id),
                    alert_timeline.c.kind == "notified",
                )
                .limit(1)
            )
        ).first()
        return timeline_entry(row) if row is not None else None

    async def notified_recipients(self, alert_id: uuid.UUID) -> list[uuid.UUID]:
        """Everyone a notification was requested for, in the order they were first notified."""
        rows = await self._session.execute(
            sa.select(alert_timeline.c.recipient_id)
            .where(
                alert_timeline.c.alert_id == str(alert_id),
                alert_timeline.c.kind == "notified",
                alert_timeline.c.recipient_id.is_not(None),
            )
            .order_by(alert_timeline.c.id)
        )
        return list(dict.fromkeys(uuid.UUID(r) for (r,) in rows))
