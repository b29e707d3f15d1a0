"""Use cases of the sweeper: expire notices, purge restricted detail, prune old records.

Each handles one batch inside the unit of work it is given; worker.py opens one unit
of work per batch and runs them until nothing is left.
"""

from __future__ import annotations

from datetime import datetime

from services.common.db import AfterCommit
from services.common.logging import get_logger
from services.intake.deps import IntakeDeps
from services.intake.domain import NoticeRecord, expiry_due, purge_due
from services.intake.domain import transitions as domain
from services.intake.unit_of_work import IntakeUoW

__all__ = ["SWEEP_BATCH", "expire_notices", "prune_records", "purge_restricted"]

log = get_logger(__name__)

SWEEP_BATCH = 100


def _logger(event: str, notice: NoticeRecord) -> AfterCommit:
    # Binds this notice now: a lambda in the loop would log the last one each time.
    return lambda: log.info(event, notice_id=notice.id, version=notice.current_version)


async def expire_notices(uow: IntakeUoW, *, deps: IntakeDeps, now: datetime) -> int:
    """Move open notices whose window ended more than the grace period ago to expired."""
    candidates = await uow.notices.due_for_expiry(
        ended_before=now - deps.expiry_grace, limit=SWEEP_BATCH
    )
    due = [
        n
        for n in candidates
        if expiry_due(state=n.state, window_end=n.window_end, now=now, grace=deps.expiry_grace)
    ]
    for notice in due:
        await uow.notices.apply(domain.expire(notice, now=now), now=now)
        uow.after_commit(_logger("notice.expired", notice))
    return len(due)


async def purge_restricted(uow: IntakeUoW, *, deps: IntakeDeps, now: datetime) -> int:
    """Drop the restricted detail of notices closed longer than the retention period."""
    candidates = await uow.notices.due_for_purge(
        closed_before=now - deps.retention, limit=SWEEP_BATCH
    )
    due = [
        n
        for n in candidates
        if purge_due(
            state=n.state,
            closed_at=n.closed_at,
            purged_at=n.restricted_purged_at,
            now=now,
            retention=deps.retention,
        )
    ]
    for notice in due:
        versions = await uow.notices.versions(notice.id)
        sealed = sum(1 for v in versions if v.restricted_sealed is not None)
        await uow.notices.apply(domain.purge(notice, sealed_versions=sealed, now=now), now=now)
        uow.after_commit(_logger("notice.restricted_purged", notice))
    return len(due)


async def prune_records(uow: IntakeUoW, *, deps: IntakeDeps, now: datetime) -> int:
    """Forget signature replays and Idempotency-Keys older than they can matter."""
    return await uow.requests.prune(
        replays_before=now - deps.replay_ttl, keys_before=now - deps.idempotency_ttl
    )
