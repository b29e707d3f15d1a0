"""Escalation-guarded changes of alert rows the transaction holds locked, sent as one batch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.domain import OPEN_STATES, EscalationGuard, Transition
from services.router.repository._sql import aware, constants
from services.router.repository.alert_changes import changed_columns
from services.router.repository.alert_rows import column_value
from services.router.tables import alerts

__all__ = ["update_guarded"]


async def update_guarded(
    session: AsyncSession, transitions: Sequence[Transition]
) -> dict[uuid.UUID, bool]:
    """One compare-and-set UPDATE per transition, sent as one batch; which ones took."""
    if not transitions:
        return {}
    names = sorted({name for t in transitions for name in changed_columns(t)})
    # Unchanged columns are written with the value they already hold (the row is ours).
    statement = (
        sa.update(alerts)
        .where(
            alerts.c.id == sa.bindparam("b_id"),
            # No IN (...): an expanding parameter cannot be sent as a batch.
            sa.or_(*(alerts.c.state == state for state in constants(OPEN_STATES))),
            alerts.c.active_escalation_id.is_not_distinct_from(sa.bindparam("b_guard")),
        )
        .values({name: sa.bindparam(f"v_{name}") for name in names})
    )
    params = []
    for t in transitions:
        assert isinstance(t.guard, EscalationGuard)
        values = {f"v_{n}": column_value(getattr(t.after, n)) for n in names}
        params.append({"b_id": str(t.after.id), "b_guard": t.guard.escalation_id, **values})
    await session.execute(statement, params)
    # Executemany reports no row count per statement: read back what each row holds.
    # Our locks keep everyone else out, so a row matching its `after` is our write.
    stored = await session.execute(
        sa.select(
            alerts.c.id, alerts.c.active_escalation_id, alerts.c.state, alerts.c.updated_at
        ).where(alerts.c.id.in_([str(t.after.id) for t in transitions]))
    )
    now_holds = {
        uuid.UUID(r.id): (r.active_escalation_id, r.state, aware(r.updated_at)) for r in stored
    }
    return {
        t.after.id: now_holds.get(t.after.id)
        == (t.after.active_escalation_id, t.after.state, t.after.updated_at)
        for t in transitions
    }
