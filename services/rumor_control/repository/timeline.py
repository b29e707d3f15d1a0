"""The audit log: every step of a rumor or bulletin (ids and reason codes, never text)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.rumor_control.domain import Aggregate, AuditEntry, TimelineRecord
from services.rumor_control.repository._sql import uuid_or_none, when
from services.rumor_control.tables import audit_log

__all__ = ["SqlTimeline", "record", "record_all"]


async def record(session: AsyncSession, entry: TimelineRecord) -> None:
    """Append one step to the audit log."""
    await record_all(session, (entry,))


async def record_all(session: AsyncSession, entries: Sequence[TimelineRecord]) -> None:
    """Append steps to the audit log in one statement (a batch of delivery outcomes)."""
    if entries:
        await session.execute(sa.insert(audit_log), [_values(entry) for entry in entries])


def _values(entry: TimelineRecord) -> dict[str, Any]:
    actor = entry.actor
    return {
        "at": entry.at,
        "aggregate": entry.aggregate,
        "aggregate_id": str(entry.aggregate_id),
        "version": entry.version,
        "action": entry.action,
        "actor_id": None if actor is None else str(actor.id),
        "actor_name": None if actor is None else actor.name,
        "actor_role": None if actor is None else actor.role,
        "detail": dict(entry.detail),
    }


class SqlTimeline:
    """Reads of the audit log (writes come with the transition they record)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def entries(self, *, aggregate: Aggregate, aggregate_id: uuid.UUID) -> list[AuditEntry]:
        """Every step of one rumor or bulletin, in order."""
        rows = await self._session.execute(
            sa.select(audit_log)
            .where(
                audit_log.c.aggregate == aggregate, audit_log.c.aggregate_id == str(aggregate_id)
            )
            .order_by(audit_log.c.id)
        )
        return [
            AuditEntry(
                at=when(row.at),
                aggregate=row.aggregate,
                aggregate_id=uuid.UUID(row.aggregate_id),
                version=row.version,
                action=row.action,
                actor_id=uuid_or_none(row.actor_id),
                actor_name=row.actor_name,
                actor_role=row.actor_role,
                detail=row.detail or {},
            )
            for row in rows
        ]
