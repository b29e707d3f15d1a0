"""Records to response shapes, by what the caller may see.

The shape is chosen here, once: `NoticeView` has no field that could hold restricted
detail, so what ops and field offices receive cannot carry any, whatever the record
holds; only a result a use case opened for `contact` becomes a `RestrictedNoticeView`.
"""

from __future__ import annotations

from typing import Any

from schemas.base import PolicyAnnotation, is_drill
from services.intake.domain import Access, RestrictedDetail, msg_type_for
from services.intake.models import (
    AgentView,
    NoticeSummary,
    NoticeView,
    RestrictedNoticeView,
    RestrictedView,
    SourceView,
    VersionView,
)
from services.intake.repository import NoticeRecord, VersionRecord
from services.intake.service import NoticeResult

__all__ = ["notice_summary", "notice_view"]


def _summary_fields(notice: NoticeRecord) -> dict[str, Any]:
    return {
        "id": notice.id,
        "reference": notice.reference,
        "version": notice.current_version,
        "msg_type": msg_type_for(notice.current_version, cancel=notice.state == "cancelled"),
        "state": notice.state,
        "status": notice.status,
        "drill": is_drill(notice.status),  # type: ignore[arg-type]
        "received_via": notice.received_via,
        "sent_at": notice.sent_at,
        "received_at": notice.received_at,
        "updated_at": notice.updated_at,
        "closed_at": notice.closed_at,
        "operation_type": notice.operation_type,
        "public_safety_nexus": notice.public_safety_nexus,
        "window_start": notice.window_start,
        "window_end": notice.window_end,
        "area": notice.area,
        "area_code": notice.area_code,
        "summary": notice.summary,
        "cancel_reason": notice.cancel_reason,
    }


def notice_summary(notice: NoticeRecord) -> NoticeSummary:
    """A list item: releasable fields only."""
    return NoticeSummary.model_validate(_summary_fields(notice))


def _version_view(version: VersionRecord) -> VersionView:
    return VersionView.model_validate(
        {
            "version": version.version,
            "msg_type": version.msg_type,
            "references": list(version.version_refs),
            "status": version.status,
            "received_via": version.received_via,
            "sent_at": version.sent_at,
            "received_at": version.received_at,
            "operation_type": version.operation_type,
            "public_safety_nexus": version.public_safety_nexus,
            "window_start": version.window_start,
            "window_end": version.window_end,
            "area": version.area,
            "area_code": version.area_code,
            "summary": version.summary,
            "cancel_reason": version.cancel_reason,
            "policy_annotations": [PolicyAnnotation(**a) for a in version.policy_annotations],
            "restricted_changed": version.restricted_changed,
        }
    )


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
        "policy_annotations": [PolicyAnnotation(**a) for a in current.policy_annotations],
        "policy_version": current.policy_version,
        "history": [_version_view(version) for version in result.versions],
    }
    if result.access is not Access.RESTRICTED:
        return NoticeView.model_validate(fields)
    detail = result.detail
    return RestrictedNoticeView.model_validate(
        {
            **fields,
            "source": _source(detail) if detail is not None else None,
            "restricted": _restricted(detail) if detail is not None else None,
            "restricted_purged_at": result.notice.restricted_purged_at,
        }
    )
