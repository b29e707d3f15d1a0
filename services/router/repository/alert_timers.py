"""The escalation worker's reads of alerts: due timers and expiries, locked, and the next
deadline (a part of `SqlAlertRepository`, which inherits them)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.domain import OPEN_STATES, AlertRecord
from services.router.repository._sql import constants, is_postgres, must
from services.router.repository.alert_rows import record
from services.router.tables import alerts

__all__ = ["AlertTimers"]


class AlertTimers:
    """Timer reads over the repository's session (`_session`, set by the repository)."""

    _session: AsyncSession

    async def claim_due_timers(
        self, *, now: datetime, limit: int, skip: Sequence[str] = ()
    ) -> list[AlertRecord]:
        """Up to `limit` due open alerts nobody else is firing, most overdue first, locked.

        PostgreSQL: `FOR UPDATE SKIP LOCKED`, so two routers each take different alerts
        and neither waits for the other; the rows stay locked until the batch commits, so
        what is read here is what the compare-and-set will find. SQLite: the transaction
        began IMMEDIATE and holds the database's write lock for the whole batch.
        """
        query = (
            sa.select(alerts)
            .where(
                alerts.c.next_fire_at.is_not(None),
                alerts.c.next_fire_at <= now,
                alerts.c.state.in_(constants(OPEN_STATES)),
            )
            .order_by(alerts.c.next_fire_at)
        )
        rows = await self._claim(query, skip, limit=limit)
        return [record(row) for row in rows]

    async def claim_due_expiry(
        self, *, now: datetime, skip: Sequence[str] = ()
    ) -> uuid.UUID | None:
        """An unresolved alert whose operation window has ended, locked like a timer."""
        query = (
            sa.select(alerts.c.id)
            .where(alerts.c.resolved_at.is_(None), alerts.c.expires_at <= now)
            .order_by(alerts.c.expires_at)
        )
        rows = await self._claim(query, skip, limit=1)
        return uuid.UUID(rows[0].id) if rows else None

    async def _claim(self, query: sa.Select[Any], skip: Sequence[str], *, limit: int) -> list[Any]:
        query = query.limit(limit)
        if skip:
            query = query.where(alerts.c.id.not_in(list(skip)))
        if is_postgres(self._session):
            query = query.with_for_update(skip_locked=True)
        return list(await self._session.execute(query))

    async def next_deadline(self) -> datetime | None:
        """The earliest pending timer or expiry, so the worker can sleep until then."""
        timers = sa.select(sa.func.min(alerts.c.next_fire_at)).where(
            alerts.c.state.in_(constants(OPEN_STATES))
        )
        # The partial index's own predicate: the index of unresolved alerts answers it.
        expiries = sa.select(sa.func.min(alerts.c.expires_at)).where(alerts.c.resolved_at.is_(None))
        # min() keeps the column's type, so SQLite's stored text comes back as a datetime.
        found = [
            must(value)
            for value in (
                (await self._session.execute(timers)).scalar_one_or_none(),
                (await self._session.execute(expiries)).scalar_one_or_none(),
            )
            if value is not None
        ]
        return min(found) if found else None
