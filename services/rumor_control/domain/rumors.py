"""Rumor transitions: a report joins or opens a rumor; a vetter assesses it.

Rumor: reported -> assessed (re-assessed as facts change; an assessment expires). Each
function returns the rows, the timeline entry and the event, applied together by
`uow.rumors.apply(transition)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from schemas.base import EventData, Status
from schemas.rumors import RumorAssessed, RumorAssessment, RumorChannel, RumorReported
from services.rumor_control.domain.errors import InvalidInput
from services.rumor_control.domain.records import ReportRow, RumorRow
from services.rumor_control.domain.rules import Actor
from services.rumor_control.domain.timeline import TimelineRecord

__all__ = ["NewReport", "RumorTransition", "assess", "assessment_window", "report"]


@dataclass(frozen=True)
class NewReport:
    """A report as a liaison, the phone line or the radio desk heard it."""

    claim: str
    place: str
    channel: RumorChannel
    organisation: str | None = None
    observed_at: datetime | None = None
    language: str | None = None
    drill: bool = False

    @property
    def status(self) -> Status:
        """Drill reports make drill rumors (status Exercise), never public."""
        return "Exercise" if self.drill else "Actual"


@dataclass(frozen=True)
class RumorTransition:
    """One step of a rumor, applied at once: rows, timeline entry and event."""

    rumor: RumorRow
    created: bool
    timeline: TimelineRecord
    event: EventData
    report: ReportRow | None = None


def report(
    existing: RumorRow | None,
    *,
    report: NewReport,
    reporter: Actor,
    report_id: uuid.UUID,
    new_rumor_id: uuid.UUID,
    area_code: str | None,
    area: str | None,
    place_key: str,
    at: datetime,
) -> RumorTransition:
    """A report opens a rumor, or joins `existing` (chosen by `rules.choose_rumor`)."""
    observed = report.observed_at or at
    if existing is None:
        rumor = RumorRow(
            new_rumor_id, report.status, area_code, area, place_key, 1, (report.channel,), at,
            at, observed, observed, None, 0, None, None, None, None, (),
        )  # fmt: skip
    else:
        rumor = replace(
            existing,
            report_count=existing.report_count + 1,
            channels=tuple(sorted({*existing.channels, report.channel})),
            last_reported_at=max(existing.last_reported_at, at),
            first_observed_at=min(existing.first_observed_at, observed),
            last_observed_at=max(existing.last_observed_at, observed),
        )
    row = ReportRow(
        report_id, rumor.rumor_id, report.claim, report.place, report.channel,
        report.organisation, report.language, reporter.name, report.observed_at, at, reporter.id,
    )  # fmt: skip
    event = RumorReported(
        rumor_id=rumor.rumor_id,
        status=rumor.status,
        area_code=area_code,
        area=area,
        report_id=report_id,
        channel=report.channel,
        channels=rumor.channels,
        report_count=rumor.report_count,
        first_reported_at=rumor.first_reported_at,
        reported_at=at,
        observed_at=report.observed_at,
    )
    detail = {"report_id": str(report_id), "channel": report.channel}
    step = TimelineRecord("rumor", rumor.rumor_id, "reported", reporter, at, None, detail)
    return RumorTransition(rumor, existing is None, step, event, row)


def assessment_window(
    *, as_of: datetime | None, expires_at: datetime | None, now: datetime, valid: timedelta
) -> tuple[datetime, datetime]:
    """When an assessment holds: from `as_of` (default now) to `expires_at` (default
    as_of plus the configured validity), which must come later."""
    as_of = as_of or now
    expires_at = expires_at or as_of + valid
    if expires_at <= as_of:
        raise InvalidInput("assessment.expiry_before_as_of", "expires_at must be after as_of")
    return as_of, expires_at


def assess(
    rumor: RumorRow,
    *,
    actor: Actor,
    assessment: RumorAssessment,
    as_of: datetime,
    expires_at: datetime,
    linked_notice_ids: Sequence[uuid.UUID],
    at: datetime,
) -> RumorTransition:
    """reported -> assessed: the vetter's decision as the rumor's next revision."""
    assessed = replace(
        rumor,
        assessment=assessment,
        assessment_revision=rumor.assessment_revision + 1,
        as_of=as_of,
        expires_at=expires_at,
        assessed_by=actor.id,
        assessed_by_name=actor.name,
        linked_notice_ids=tuple(sorted(set(linked_notice_ids), key=str)),
    )
    event = RumorAssessed(
        rumor_id=rumor.rumor_id,
        status=assessed.status,
        area_code=assessed.area_code,
        area=assessed.area,
        assessment=assessment,
        revision=assessed.assessment_revision,
        as_of=as_of,
        expires_at=expires_at,
        assessed_by=actor.id,
        linked_notice_ids=assessed.linked_notice_ids,
    )
    detail = {
        "assessment": assessment,
        "revision": assessed.assessment_revision,
        "linked_notice_ids": [str(i) for i in assessed.linked_notice_ids],
    }
    step = TimelineRecord("rumor", rumor.rumor_id, "assessed", actor, at, None, detail)
    return RumorTransition(assessed, False, step, event)
