"""A rumor as heard: each report joins the rumor about the same place and time, or opens one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from schemas.base import Status
from schemas.fingerprints import normalize
from services.common.logging import get_logger
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import Actor, RumorCandidate, choose_rumor
from services.rumor_control.domain import rumors as transitions
from services.rumor_control.domain.rumors import NewReport
from services.rumor_control.metrics import RUMOR_REPORTS
from services.rumor_control.unit_of_work import RumorControlUoW

__all__ = ["NewReport", "ReportOutcome", "report_rumor"]

log = get_logger(__name__)


@dataclass(frozen=True)
class ReportOutcome:
    """Where a report was filed."""

    report_id: uuid.UUID
    rumor_id: uuid.UUID
    new_rumor: bool
    report_count: int
    area_code: str | None
    area: str | None
    status: Status


async def report_rumor(
    uow: RumorControlUoW, *, deps: RumorControlDeps, actor: Actor, report: NewReport
) -> ReportOutcome:
    """File a report: join the rumor about the same place and time, or open a new one."""
    now = deps.clock()
    observed = report.observed_at or now
    area = deps.gazetteer.match(report.place) or deps.gazetteer.match(report.claim)
    area_code = None if area is None else area.code
    area_name = None if area is None else area.name("en")
    place_key = normalize(report.place)[:200]
    window = timedelta(minutes=deps.settings.rumor_cluster_window_minutes)
    candidates = await uow.rumors.candidates(
        status=report.status,
        area_code=area_code,
        place_key=place_key,
        observed_at=observed,
        window=window,
    )
    chosen = choose_rumor(
        (RumorCandidate(c.rumor_id, c.first_observed_at, c.last_observed_at) for c in candidates),
        observed_at=observed,
        window=window,
    )
    transition = transitions.report(
        next((c for c in candidates if c.rumor_id == chosen), None),
        report=report, reporter=actor, report_id=uuid.uuid4(), new_rumor_id=uuid.uuid4(),
        area_code=area_code, area=area_name, place_key=place_key, at=now,
    )  # fmt: skip
    await uow.rumors.apply(transition)
    rumor, filed = transition.rumor, transition.report
    assert filed is not None  # a report transition always files one

    def reported() -> None:
        RUMOR_REPORTS.labels(report.channel, str(not transition.created).lower()).inc()
        log.info(
            "rumor.reported",
            rumor_id=str(rumor.rumor_id),
            report_id=str(filed.report_id),
            area_code=area_code,
            report_count=rumor.report_count,
            clustered=not transition.created,
        )

    uow.after_commit(reported)
    return ReportOutcome(
        filed.report_id, rumor.rumor_id, transition.created, rumor.report_count,
        area_code, area_name, rumor.status,
    )  # fmt: skip
