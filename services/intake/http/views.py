"""What intake answers: the response shapes, and records presented by what the caller sees.

`NoticeSummary` (list items) and `NoticeView` (detail, with history) hold releasable
fields only; they are what `ops` and field offices see, and restricted fields are
absent from them, not blank, whatever the record holds. Only a result whose access
permissions.py granted as restricted becomes a `RestrictedNoticeView` (for `contact`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_never

from pydantic import BaseModel, ConfigDict, Field

from schemas.base import MsgType, PolicyAnnotation, Status, is_drill
from schemas.notices import CancelReason, OperationType, ReceivedVia
from services.intake.domain import (
    NoticeRecord,
    NoticeState,
    RestrictedDetail,
    VersionRecord,
    msg_type_for,
)
from services.intake.notices import NoticeResult
from services.intake.permissions import Access, visible_detail

__all__ = [
    "AgentView",
    "NoticePage",
    "NoticeSummary",
    "NoticeView",
    "RestrictedNoticeView",
    "RestrictedView",
    "SourceView",
    "VersionView",
    "notice_summary",
    "notice_view",
]


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionView(_View):
    """One version of a notice, CAP-style (releasable fields)."""

    version: int
    msg_type: MsgType
    references: list[str]
    status: Status
    received_via: ReceivedVia
    sent_at: datetime
    received_at: datetime
    operation_type: OperationType
    public_safety_nexus: bool
    window_start: datetime
    window_end: datetime
    area: str
    area_code: str | None
    summary: str
    cancel_reason: CancelReason | None
    policy_annotations: list[PolicyAnnotation]
    restricted_changed: bool = Field(
        description="Whether this version changed the restricted detail."
    )


class NoticeSummary(_View):
    """A notice's releasable state, as listed."""

    id: str
    reference: str
    version: int
    msg_type: MsgType
    state: NoticeState = Field(description="received, updated, cancelled or expired.")
    status: Status
    drill: bool = Field(description="Exercise or Test: marked DRILL, never public.")
    received_via: ReceivedVia
    sent_at: datetime
    received_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    operation_type: OperationType
    public_safety_nexus: bool
    window_start: datetime
    window_end: datetime
    area: str
    area_code: str | None
    summary: str
    cancel_reason: CancelReason | None


class NoticeView(NoticeSummary):
    """One notice with its history, releasable fields only: what ops and field offices see."""

    policy_annotations: list[PolicyAnnotation] = Field(
        description="Department policy statements that apply (frozen when recorded)."
    )
    policy_version: str
    history: list[VersionView] = Field(description="Every version, oldest first.")


class AgentView(_View):
    """The reporting agent."""

    name: str
    phone: str | None
    email: str | None


class SourceView(_View):
    """Who sent the notice and who recorded it."""

    field_office_id: str
    field_office_name: str
    agent: AgentView
    recorded_by: str


class RestrictedView(_View):
    """Restricted detail of the current version."""

    names: list[str]
    addresses: list[str]
    vehicles: list[str]
    exact_locations: list[str]
    free_text: str | None


class RestrictedNoticeView(NoticeView):
    """A notice with its source and restricted detail: only `contact` sees this (audited)."""

    source: SourceView | None = Field(description="Null once purged after retention.")
    restricted: RestrictedView | None = Field(description="Null once purged after retention.")
    restricted_purged_at: datetime | None


class NoticePage(_View):
    """A page of notices, newest first."""

    items: list[NoticeSummary]
    limit: int
    offset: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


# --- presenting -------------------------------------------------------------------


def _summary_fields(notice: NoticeRecord) -> dict[str, Any]:
    return {
        **notice.releasable(),
        "id": notice.id,
        "reference": notice.reference,
        "version": notice.current_version,
        "msg_type": msg_type_for(notice.current_version, cancel=notice.state == "cancelled"),
        "state": notice.state,
        "drill": is_drill(notice.status),
        "received_at": notice.received_at,
        "updated_at": notice.updated_at,
        "closed_at": notice.closed_at,
        "cancel_reason": notice.cancel_reason,
    }


def notice_summary(notice: NoticeRecord) -> NoticeSummary:
    """A list item: releasable fields only."""
    return NoticeSummary.model_validate(_summary_fields(notice))


def _version_fields(version: VersionRecord) -> dict[str, Any]:
    # Plain values, the annotations as the dicts the version keeps: the view's one
    # validation builds the nested models in pydantic-core, not one Python call each.
    return {
        **version.releasable(),
        "version": version.version,
        "msg_type": version.msg_type,
        "references": list(version.version_refs),
        "received_at": version.received_at,
        "cancel_reason": version.cancel_reason,
        "policy_annotations": version.policy_annotations,
        "restricted_changed": version.restricted_changed,
    }


def _source(detail: RestrictedDetail) -> SourceView:
    return SourceView(
        field_office_id=detail.field_office_id,
        field_office_name=detail.field_office_name,
        agent=AgentView(name=detail.agent_name, phone=detail.agent_phone, email=detail.agent_email),
        recorded_by=detail.recorded_by,
    )


def _restricted(detail: RestrictedDetail) -> RestrictedView:
    return RestrictedView(
        names=list(detail.names),
        addresses=list(detail.addresses),
        vehicles=list(detail.vehicles),
        exact_locations=list(detail.exact_locations),
        free_text=detail.free_text,
    )


def notice_view(result: NoticeResult) -> NoticeView | RestrictedNoticeView:
    """The detail view: history for everyone allowed, restricted detail for contact only."""
    current = result.versions[-1]
    fields = {
        **_summary_fields(result.notice),
        "policy_annotations": current.policy_annotations,
        "policy_version": current.policy_version,
        "history": [_version_fields(version) for version in result.versions],
    }
    match result.access:
        case Access.METADATA:
            return NoticeView.model_validate(fields)
        case Access.RESTRICTED:
            detail = visible_detail(result.access, result.detail)
            return RestrictedNoticeView.model_validate(
                {
                    **fields,
                    "source": _source(detail) if detail is not None else None,
                    "restricted": _restricted(detail) if detail is not None else None,
                    "restricted_purged_at": result.notice.restricted_purged_at,
                }
            )
        case _:
            assert_never(result.access)
