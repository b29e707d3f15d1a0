"""Builders of valid contract events for tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from schemas.base import Status, version_ref
from schemas.fingerprints import fingerprint_term
from schemas.notices import CancelReason, NoticeCancelled, NoticeReceived, NoticeUpdated

__all__ = ["fingerprinted_notice", "notice_cancelled", "notice_updated"]


def notice_updated(
    notice_id: uuid.UUID, version: int, *, summary: str = "test notice"
) -> NoticeUpdated:
    """Version `version` (>= 2) of a notice, releasable fields only."""
    now = datetime.now(UTC)
    return NoticeUpdated(
        notice_id=notice_id,
        version=version,
        references=tuple(version_ref(notice_id, v) for v in range(1, version)),
        status="Exercise",
        sent_at=now,
        received_at=now,
        received_via="api",
        operation_type="other",
        public_safety_nexus=False,
        window_start=now + timedelta(hours=1),
        window_end=now + timedelta(hours=3),
        area="District 4",
        summary=summary,
        policy_annotations=(),
        restricted_fingerprints=(),
        fingerprint_key_id="test",
    )


def notice_cancelled(
    notice_id: uuid.UUID,
    version: int = 2,
    *,
    status: Status = "Exercise",
    reason: CancelReason = "operation_postponed",
) -> NoticeCancelled:
    """Version `version` (>= 2) of a notice: its cancellation."""
    now = datetime.now(UTC)
    return NoticeCancelled(
        notice_id=notice_id,
        version=version,
        references=tuple(version_ref(notice_id, v) for v in range(1, version)),
        status=status,
        sent_at=now,
        received_at=now,
        reason=reason,
    )


def fingerprinted_notice(
    *,
    fingerprint_key: bytes,
    key_id: str,
    now: datetime,
    area_code: str = "riverside",
    status: Status = "Actual",
    restricted_terms: Iterable[str] = (),
    start: datetime | None = None,
) -> NoticeReceived:
    """A notice as intake would emit it: restricted terms only as fingerprints."""
    start = start or now + timedelta(hours=2)
    prints: set[str] = set()
    for term in restricted_terms:
        prints |= fingerprint_term(fingerprint_key, term)
    return NoticeReceived(
        notice_id=uuid.uuid4(),
        version=1,
        references=(),
        status=status,
        sent_at=now,
        received_at=now,
        received_via="api",
        operation_type="targeted_arrest",
        public_safety_nexus=True,
        window_start=start,
        window_end=start + timedelta(hours=3),
        area=area_code.replace("-", " ").title(),
        area_code=area_code,
        summary="Federal operation announced by the field office.",
        policy_annotations=(),
        restricted_fingerprints=tuple(sorted(prints)),
        fingerprint_key_id=key_id,
    )
