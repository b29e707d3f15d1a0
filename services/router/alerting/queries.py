"""Reading alerts: one, a page of them, and an alert's timeline."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from services.router.domain import AlertRecord, TimelineEntry
from services.router.errors import AlertNotFound
from services.router.unit_of_work import RouterUoW

__all__ = ["alert_timeline", "get_alert", "list_alerts", "require_alert"]


async def require_alert(uow: RouterUoW, alert_id: uuid.UUID, *, lock: bool = False) -> AlertRecord:
    """The alert, or AlertNotFound."""
    alert = await uow.alerts.get(alert_id, lock=lock)
    if alert is None:
        raise AlertNotFound(str(alert_id))
    return alert


async def get_alert(uow: RouterUoW, *, alert_id: uuid.UUID) -> AlertRecord:
    """One alert; raises AlertNotFound."""
    return await require_alert(uow, alert_id)


async def list_alerts(
    uow: RouterUoW,
    *,
    states: Sequence[str],
    limit: int,
    offset: int,
    notice_id: uuid.UUID | None = None,
) -> list[AlertRecord]:
    """Alerts, newest first; with `notice_id`, only that notice's (a submitter finds its
    alert)."""
    return await uow.alerts.page(states=states, limit=limit, offset=offset, notice_id=notice_id)


async def alert_timeline(
    uow: RouterUoW, *, alert_id: uuid.UUID
) -> tuple[AlertRecord, list[TimelineEntry]]:
    """An alert and everything that happened to it."""
    alert = await require_alert(uow, alert_id)
    return alert, await uow.alerts.timeline(alert_id)
