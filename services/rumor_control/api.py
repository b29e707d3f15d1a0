"""Request and response bodies of the rumor_control HTTP API, and the views per role.

What a caller sees depends on the role: a vetter sees drafts with their guardrail
findings and the claims as heard; a liaison sees only published text; ops sees metadata
(ids, states, reason codes, timelines), never text or claims.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from schemas.base import Language, ReasonCode, Status, is_drill
from schemas.rumors import RumorAssessment, RumorChannel
from services.rumor_control.repository import (
    AuditEntry,
    BulletinRow,
    DeliveryRow,
    ReceiptRow,
    VersionRow,
)
from services.rumor_control.service import BulletinView, ReportOutcome, RumorView

__all__ = [
    "ApproveIn",
    "AssessIn",
    "AssessOut",
    "BulletinDetail",
    "BulletinSummary",
    "DeliveriesOut",
    "EditIn",
    "FindingOut",
    "RejectIn",
    "ReportIn",
    "ReportOut",
    "RetractIn",
    "RumorOut",
    "SignOffIn",
    "TimelineEntry",
    "bulletin_detail",
    "bulletin_summary",
    "rumor_out",
]

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportIn(_In):
    """A rumor as heard, by phone, radio, a community leader, social media or a walk-in."""

    claim: Annotated[_Text, StringConstraints(max_length=2000)] = Field(
        description="The claim as heard, in any language."
    )
    place: Annotated[_Text, StringConstraints(max_length=200)] = Field(
        description="Where it was seen or heard, as said (matched against the gazetteer)."
    )
    channel: RumorChannel
    organisation: Annotated[_Text, StringConstraints(max_length=200)] | None = Field(
        default=None, description="The reporting organisation, if any."
    )
    observed_at: AwareDatetime | None = Field(
        default=None, description="When the activity was seen or heard; default: now."
    )
    language: Annotated[str, StringConstraints(max_length=8)] | None = None
    drill: bool = Field(default=False, description="A drill report (status Exercise).")


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
        """From the use case's outcome."""
        return cls(
            report_id=outcome.report_id,
            rumor_id=outcome.rumor_id,
            new_rumor=outcome.new_rumor,
            report_count=outcome.report_count,
            area_code=outcome.area_code,
            area=outcome.area,
            status=outcome.status,
        )


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


def rumor_out(view: RumorView, *, with_reports: bool) -> RumorOut:
    """The API shape of a rumor; reports (claims as heard) only for vetters."""
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
        reports=(
            [
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
            if with_reports
            else None
        ),
    )


class AssessIn(_In):
    """A vetter's assessment of a rumor."""

    assessment: RumorAssessment
    as_of: AwareDatetime | None = Field(default=None, description="Default: now.")
    expires_at: AwareDatetime | None = Field(
        default=None, description="Default: as_of plus the configured validity."
    )
    linked_notice_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Notices the vetter links (see the suggestion)."
    )


class AssessOut(BaseModel):
    """The assessed rumor and the Rumor/Fact draft it produced."""

    rumor: RumorOut
    bulletin_id: uuid.UUID


class FindingOut(BaseModel):
    """A guardrail finding, shown to the vetter."""

    code: str
    language: str | None
    section: str | None
    detail: str


class SectionsOut(BaseModel):
    """One language version."""

    headline: str
    body: str
    sms: str
    radio: str


class SignoffOut(BaseModel):
    """Who signed a language off."""

    language: str
    by: uuid.UUID
    name: str
    at: datetime


class VersionOut(BaseModel):
    """One version's metadata."""

    version: int
    msg_type: str
    state: str
    revision: int
    references: list[str]
    blocked_reasons: list[str]
    author_id: uuid.UUID | None
    drafted_at: datetime
    approved_by: uuid.UUID | None
    published_at: datetime | None
    rejected_by: uuid.UUID | None
    reason_codes: list[str]


class BulletinSummary(BaseModel):
    """A bulletin as listed."""

    bulletin_id: uuid.UUID
    kind: str
    status: Status
    drill: bool
    state: str = Field(description="What the public sees: drafted, rejected, published, retracted.")
    version: int
    version_state: str = Field(description="The latest version's own state.")
    msg_type: str
    area_code: str | None
    rumor_id: uuid.UUID | None
    notice_ids: list[uuid.UUID]
    blocked_reasons: list[str]
    signed_off: list[str]
    author_id: uuid.UUID | None
    author_name: str | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None


def bulletin_summary(bulletin: BulletinRow, latest: VersionRow) -> BulletinSummary:
    """Metadata only: no text."""
    return BulletinSummary(
        bulletin_id=bulletin.bulletin_id,
        kind=bulletin.kind,
        status=bulletin.status,
        drill=is_drill(bulletin.status),
        state=bulletin.state,
        version=latest.version,
        version_state=latest.state,
        msg_type=latest.msg_type,
        area_code=bulletin.area_code,
        rumor_id=bulletin.rumor_id,
        notice_ids=list(bulletin.notice_ids),
        blocked_reasons=list(latest.blocked_reasons),
        signed_off=sorted(latest.signoffs),
        author_id=latest.author_id,
        author_name=latest.author_name,
        created_at=bulletin.created_at,
        updated_at=bulletin.updated_at,
        published_at=latest.published_at,
    )


class BulletinDetail(BulletinSummary):
    """A bulletin with its texts (per role), guardrail findings and versions."""

    texts: dict[str, SectionsOut] | None = Field(
        default=None,
        description="Vetters: the latest version. Liaisons: the latest published version. "
        "Ops: none.",
    )
    guardrails: list[FindingOut] = Field(default_factory=list)
    signoffs: list[SignoffOut] = Field(default_factory=list)
    versions: list[VersionOut] = Field(default_factory=list)


def _texts(version: VersionRow) -> dict[str, SectionsOut]:
    return {lang: SectionsOut(**sections) for lang, sections in version.texts.items()}


def bulletin_detail(view: BulletinView, *, texts: str) -> BulletinDetail:
    """`texts`: "draft" (vetters), "published" (liaisons) or "none" (ops)."""
    latest = view.latest
    summary = bulletin_summary(view.bulletin, latest)
    shown: dict[str, SectionsOut] | None = None
    if texts == "draft":
        shown = _texts(latest)
    elif texts == "published" and view.last_published is not None:
        shown = _texts(view.last_published)
    return BulletinDetail(
        **summary.model_dump(),
        texts=shown,
        guardrails=[FindingOut(**f) for f in latest.findings] if texts == "draft" else [],
        signoffs=[
            SignoffOut(language=lang, by=v["by"], name=v["name"], at=v["at"])
            for lang, v in sorted(latest.signoffs.items())
        ],
        versions=[
            VersionOut(
                version=v.version,
                msg_type=v.msg_type,
                state=v.state,
                revision=v.revision,
                references=list(v.references),
                blocked_reasons=list(v.blocked_reasons),
                author_id=v.author_id,
                drafted_at=v.drafted_at,
                approved_by=v.approved_by,
                published_at=v.published_at,
                rejected_by=v.rejected_by,
                reason_codes=list(v.reason_codes),
            )
            for v in view.versions
        ],
    )


class EditIn(_In):
    """New text for sections of one language (omitted sections stay as they are)."""

    headline: Annotated[_Text, StringConstraints(max_length=200)] | None = None
    body: Annotated[_Text, StringConstraints(max_length=10_000)] | None = None
    sms: Annotated[_Text, StringConstraints(max_length=1000)] | None = None
    radio: Annotated[_Text, StringConstraints(max_length=10_000)] | None = None

    def changes(self) -> dict[str, str]:
        """Only the sections given."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class SignOffIn(_In):
    """Languages the vetter signs off."""

    languages: list[Language] = Field(min_length=1)


class ApproveIn(_In):
    """Approve, optionally signing off languages in the same step."""

    sign_off: list[Language] = Field(default_factory=list)


class RejectIn(_In):
    """Why a draft is rejected (codes go on the event; the comment stays here)."""

    reason_codes: list[ReasonCode] = Field(min_length=1)
    comment: Annotated[str, StringConstraints(max_length=2000)] | None = None


class RetractIn(_In):
    """Why a published bulletin is withdrawn."""

    reason_code: ReasonCode


class TimelineEntry(BaseModel):
    """One step of a rumor's or bulletin's history."""

    at: datetime
    action: str
    version: int | None
    actor_id: uuid.UUID | None
    actor_name: str | None
    actor_role: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry) -> TimelineEntry:
        """From an audit log row."""
        return cls(
            at=entry.at,
            action=entry.action,
            version=entry.version,
            actor_id=entry.actor_id,
            actor_name=entry.actor_name,
            actor_role=entry.actor_role,
            detail=dict(entry.detail),
        )


class DeliveryOut(BaseModel):
    """One delivery's outcome."""

    delivery_id: uuid.UUID
    version: int
    recipient_id: uuid.UUID
    recipient_name: str | None
    channel: str
    language: str
    purpose: str
    outcome: str
    attempted_at: datetime


class ReceiptOut(BaseModel):
    """Who confirmed reading which version."""

    version: int
    recipient_id: uuid.UUID
    recipient_name: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    seen_count: int


class DeliveriesOut(BaseModel):
    """Deliveries and receipts of a bulletin."""

    deliveries: list[DeliveryOut]
    receipts: list[ReceiptOut]

    @classmethod
    def of(
        cls,
        deliveries: list[DeliveryRow],
        receipts: list[ReceiptRow],
        names: dict[uuid.UUID, str],
    ) -> DeliveriesOut:
        """With recipients' names from the configuration."""
        return cls(
            deliveries=[
                DeliveryOut(
                    delivery_id=d.delivery_id,
                    version=d.version,
                    recipient_id=d.recipient_id,
                    recipient_name=names.get(d.recipient_id),
                    channel=d.channel,
                    language=d.language,
                    purpose=d.purpose,
                    outcome=d.outcome,
                    attempted_at=d.attempted_at,
                )
                for d in deliveries
            ],
            receipts=[
                ReceiptOut(
                    version=r.version,
                    recipient_id=r.recipient_id,
                    recipient_name=names.get(r.recipient_id),
                    first_seen_at=r.first_seen_at,
                    last_seen_at=r.last_seen_at,
                    seen_count=r.seen_count,
                )
                for r in receipts
            ],
        )
