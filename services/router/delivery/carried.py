"""A batch of outcomes carried by the engine's settling statement (PostgreSQL).

The meaning is `record_outcomes`' (the same decisions, `decide_outcomes`), in one round
trip instead of four: the engine's settle with the changes, the timeline entries and
the events in one statement, committed by itself
(`services/router/repository/alert_settled.py`). The alerts are not read when the
records know what the decisions take of them (`known.py`); otherwise the alerts' lean
read goes first, autocommitted: two round trips. A final failure locks its alert
and reads the step's other records: such a batch keeps the transaction, and so does
anything the carried statement does not write (`settled_change` says None).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.delivery import Failure, Settled
from services.common.delivery.settle_query import SettleCarry
from services.common.direct import is_postgres_session
from services.router.delivery.known import decide_known
from services.router.delivery.outcomes import decide_outcomes
from services.router.deps import RouterDeps
from services.router.repository.alert_settled import (
    carried_writes,
    lean_alerts_alone,
    settled_change,
)

__all__ = ["carry_outcomes"]


async def carry_outcomes(
    session: AsyncSession, *, deps: RouterDeps, outcomes: Sequence[Settled]
) -> SettleCarry | None:
    """`record_outcomes`' writes for `outcomes` as a `SettleCarry`, or None (SQLite, a
    final failure in the batch, a batch of two different changes)."""
    if not outcomes or not is_postgres_session(session):
        return None
    if any(isinstance(o.result, Failure) and o.result.final for o in outcomes):
        return None
    now = deps.clock()
    carried = decide_known(outcomes, now=now)
    if carried is None:
        found = await lean_alerts_alone(session, {o.record.aggregate_id for o in outcomes})
        writes = decide_outcomes(found, outcomes, now=now)
        carried = carried_writes(marks=writes.marks, notes=writes.notes, observers=writes.observers)
    if carried is None:
        return None
    return settled_change(session, source=deps.source, writes=carried)
