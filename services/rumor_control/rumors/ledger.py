"""Reading the rumor ledger: rumors with the status the notices suggest, and timelines."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import (
    Aggregate,
    AuditEntry,
    NotFound,
    NoticeFacts,
    NoticeRow,
    ReportRow,
    ReportTime,
    RumorFacts,
    RumorRow,
    Suggestion,
    suggest_assessment,
)
from services.rumor_control.unit_of_work import RumorControlUoW

__all__ = ["RumorView", "get_rumor", "list_rumors", "timeline"]

# Notices whose window ended longer ago than this are not suggested for a rumor.
_SUGGESTION_HORIZON = timedelta(days=7)


@dataclass(frozen=True)
class RumorView:
    """A rumor with the vetter's suggestion and (for the detail view) its reports."""

    rumor: RumorRow
    suggestion: Suggestion
    expired: bool
    reports: tuple[ReportRow, ...] = ()


def _suggest(
    deps: RumorControlDeps,
    rumor: RumorRow,
    reports: Sequence[ReportRow],
    notices: Sequence[NoticeRow],
) -> Suggestion:
    times = tuple(ReportTime(r.observed_at, r.reported_at) for r in reports)
    return suggest_assessment(
        RumorFacts(rumor.status, rumor.area_code, times),
        [
            NoticeFacts(
                n.notice_id, n.status, n.area_code, n.window_start, n.window_end,
                n.cancelled_at is not None,
            )
            for n in notices
        ],
        gazetteer=deps.gazetteer,
        slack=timedelta(minutes=deps.settings.rumor_notice_slack_minutes),
        anticipation=timedelta(hours=deps.settings.rumor_anticipation_hours),
    )  # fmt: skip


async def list_rumors(uow: RumorControlUoW, *, deps: RumorControlDeps) -> list[RumorView]:
    """The ledger, newest first, each with its suggested status."""
    now = deps.clock()
    rumors = await uow.rumors.latest()
    notices = await uow.notices.recent(since=now - _SUGGESTION_HORIZON)
    reports = await uow.rumors.reports_of_many([r.rumor_id for r in rumors])
    return [
        RumorView(
            r,
            _suggest(deps, r, reports.get(r.rumor_id, []), notices),
            r.expires_at is not None and r.expires_at <= now,
        )
        for r in rumors
    ]


async def get_rumor(
    uow: RumorControlUoW, *, deps: RumorControlDeps, rumor_id: uuid.UUID
) -> RumorView:
    """One rumor with its reports and suggestion."""
    now = deps.clock()
    rumor = await uow.rumors.get(rumor_id)
    if rumor is None:
        raise NotFound(str(rumor_id))
    reports = await uow.rumors.reports_of(rumor_id)
    notices = await uow.notices.recent(since=now - _SUGGESTION_HORIZON)
    expired = rumor.expires_at is not None and rumor.expires_at <= now
    return RumorView(rumor, _suggest(deps, rumor, reports, notices), expired, tuple(reports))


async def timeline(
    uow: RumorControlUoW, *, aggregate: Aggregate, aggregate_id: uuid.UUID
) -> list[AuditEntry]:
    """Every recorded step of a rumor or bulletin."""
    if aggregate == "bulletin" and await uow.bulletins.get(aggregate_id) is None:
        raise NotFound(str(aggregate_id))
    if aggregate == "rumor" and await uow.rumors.get(aggregate_id) is None:
        raise NotFound(str(aggregate_id))
    return await uow.timeline.entries(aggregate=aggregate, aggregate_id=aggregate_id)
