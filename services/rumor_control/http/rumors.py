"""`/v1/rumors`: report a rumor, read the ledger, assess a rumor. Models and routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field, StrictBool, StringConstraints

from schemas.base import Status, is_drill
from schemas.rumors import RumorAssessment, RumorChannel
from services.common.bounds import BoundedDatetime
from services.common.text import MultiLine, SingleLine
from services.rumor_control import rumors
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.http.common import (
    Assessor,
    In,
    LedgerReader,
    Reporter,
    RumorId,
    TimelineEntry,
    actor_of,
    problems,
)
from services.rumor_control.permissions import sees_reports
from services.rumor_control.rumors import NewReport, ReportOutcome, RumorView

__all__ = ["AssessIn", "AssessOut", "ReportIn", "ReportOut", "RumorOut", "routes", "rumor_out"]

# Text hygiene and time bounds are the shared ones (services/common/text.py, bounds.py):
# NFC; no control, XML-invalid or (in one-line fields) line-separator characters; times
# are zoned strings in 2000-2100, so `0` (1970) or year 9999 never reach the ledger.
_Line = Annotated[SingleLine, StringConstraints(max_length=200)]


class ReportIn(In):
    """A rumor as heard, by phone, radio, a community leader, social media or a walk-in."""

    claim: Annotated[MultiLine, StringConstraints(max_length=2000)] = Field(
        description="The claim as heard, in any language."
    )
    place: _Line = Field(
        description="Where it was seen or heard, as said (matched against the gazetteer)."
    )
    channel: RumorChannel
    organisation: _Line | None = Field(
        default=None, description="The reporting organisation, if any."
    )
    observed_at: BoundedDatetime | None = Field(
        default=None,
        description="The claim's own time: when the activity was seen, or is said to happen "
        "(it may lie ahead). Omit it when the claim names no time: the report time is used, "
        "and it may anticipate a notice's window (docs/operations.md, the suggestion rule).",
    )
    language: Annotated[SingleLine, StringConstraints(max_length=8)] | None = None
    drill: StrictBool = Field(default=False, description="A drill report (status Exercise).")

    def report(self) -> NewReport:
        """The use case's input."""
        return NewReport(
            claim=self.claim,
            place=self.place,
            channel=self.channel,
            organisation=self.organisation,
            observed_at=self.observed_at,
            language=self.language,
            drill=self.drill,
        )


class ReportOut(BaseModel):
    """Where the report was filed."""

    report_id: uuid.UUID
    rumor_id: uuid.UUID
    new_rumor: bool
    report_count: int
    area_code: str | None
    area: str | None
    status: Status

    @classmethod
    def of(cls, outcome: ReportOutcome) -> ReportOut:
        """From the use case's outcome (the same fields)."""
        return cls.model_validate(outcome, from_attributes=True)


class SuggestionOut(BaseModel):
    """A status the notices suggest; the vetter decides."""

    assessment: RumorAssessment
    notice_ids: list[uuid.UUID]
    reason_code: str


class ReportDetail(BaseModel):
    """One report as heard (vetters only)."""

    report_id: uuid.UUID
    claim: str
    place_as_heard: str
    channel: str
    organisation: str | None
    language: str | None
    reported_by: str
    observed_at: datetime | None
    reported_at: datetime


class RumorOut(BaseModel):
    """A rumor of the ledger."""

    rumor_id: uuid.UUID
    status: Status
    drill: bool
    area_code: str | None
    area: str | None
    report_count: int
    channels: list[str]
    first_reported_at: datetime
    last_reported_at: datetime
    first_observed_at: datetime
    last_observed_at: datetime
    assessment: str | None
    assessment_revision: int
    as_of: datetime | None
    expires_at: datetime | None
    expired: bool
    assessed_by: uuid.UUID | None
    assessed_by_name: str | None
    linked_notice_ids: list[uuid.UUID]
    suggestion: SuggestionOut
    reports: list[ReportDetail] | None = None


def _reports(view: RumorView) -> list[ReportDetail]:
    return [
        ReportDetail(
            report_id=p.report_id,
            claim=p.claim,
            place_as_heard=p.place_as_heard,
            channel=p.channel,
            organisation=p.organisation,
            language=p.language,
            reported_by=p.reporter_name,
            observed_at=p.observed_at,
            reported_at=p.reported_at,
        )
        for p in view.reports
    ]


def rumor_out(view: RumorView, *, with_reports: bool) -> RumorOut:
    """The API shape of a rumor; reports (claims as heard) only when `with_reports`."""
    r = view.rumor
    return RumorOut(
        rumor_id=r.rumor_id,
        status=r.status,
        drill=is_drill(r.status),
        area_code=r.area_code,
        area=r.area,
        report_count=r.report_count,
        channels=list(r.channels),
        first_reported_at=r.first_reported_at,
        last_reported_at=r.last_reported_at,
        first_observed_at=r.first_observed_at,
        last_observed_at=r.last_observed_at,
        assessment=r.assessment,
        assessment_revision=r.assessment_revision,
        as_of=r.as_of,
        expires_at=r.expires_at,
        expired=view.expired,
        assessed_by=r.assessed_by,
        assessed_by_name=r.assessed_by_name,
        linked_notice_ids=list(r.linked_notice_ids),
        suggestion=SuggestionOut(
            assessment=view.suggestion.assessment,
            notice_ids=list(view.suggestion.notice_ids),
            reason_code=view.suggestion.reason_code,
        ),
        reports=_reports(view) if with_reports else None,
    )


class AssessIn(In):
    """A vetter's assessment of a rumor."""

    assessment: RumorAssessment
    as_of: BoundedDatetime | None = Field(default=None, description="Default: now.")
    expires_at: BoundedDatetime | None = Field(
        default=None, description="Default: as_of plus the configured validity."
    )
    linked_notice_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Notices the vetter links (see the suggestion)."
    )


class AssessOut(BaseModel):
    """The assessed rumor and the Rumor/Fact draft it produced."""

    rumor: RumorOut
    bulletin_id: uuid.UUID


def routes(deps: RumorControlDeps) -> APIRouter:
    """`/v1/rumors` and its sub-resources."""
    router = APIRouter(prefix="/v1", tags=["rumor control"])

    @router.post("/rumors", status_code=201, summary="Report a rumor as heard")
    async def report_rumor(principal: Reporter, body: ReportIn) -> ReportOut:
        async with deps.unit_of_work() as uow:
            outcome = await rumors.report_rumor(
                uow, deps=deps, actor=actor_of(principal), report=body.report()
            )
            await uow.commit()
        return ReportOut.of(outcome)

    @router.get("/rumors", summary="The rumor ledger with suggested statuses")
    async def list_rumors(principal: LedgerReader) -> list[RumorOut]:
        async with deps.unit_of_work() as uow:
            views = await rumors.list_rumors(uow, deps=deps)
        return [rumor_out(view, with_reports=False) for view in views]

    @router.get("/rumors/{rumor_id}", summary="One rumor (vetters also see the reports)")
    async def get_rumor(principal: LedgerReader, rumor_id: RumorId) -> RumorOut:
        with problems():
            async with deps.unit_of_work() as uow:
                view = await rumors.get_rumor(uow, deps=deps, rumor_id=rumor_id)
        return rumor_out(view, with_reports=sees_reports(principal.role))

    @router.post(
        "/rumors/{rumor_id}/assess", summary="Set a rumor's status and draft its Rumor/Fact"
    )
    async def assess_rumor(principal: Assessor, rumor_id: RumorId, body: AssessIn) -> AssessOut:
        with problems():
            async with deps.unit_of_work() as uow:
                _rumor, bulletin_id = await rumors.assess_rumor(
                    uow,
                    deps=deps,
                    actor=actor_of(principal),
                    rumor_id=rumor_id,
                    assessment=body.assessment,
                    as_of=body.as_of,
                    expires_at=body.expires_at,
                    linked_notice_ids=body.linked_notice_ids,
                )
                await uow.commit()
            async with deps.unit_of_work() as uow:
                view = await rumors.get_rumor(uow, deps=deps, rumor_id=rumor_id)
        return AssessOut(
            rumor=rumor_out(view, with_reports=sees_reports(principal.role)),
            bulletin_id=bulletin_id,
        )

    @router.get("/rumors/{rumor_id}/timeline", summary="Every step of a rumor")
    async def rumor_timeline(principal: LedgerReader, rumor_id: RumorId) -> list[TimelineEntry]:
        with problems():
            async with deps.unit_of_work() as uow:
                entries = await rumors.timeline(uow, aggregate="rumor", aggregate_id=rumor_id)
        return [TimelineEntry.of(entry) for entry in entries]

    return router
