"""Builders of valid contract events for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from schemas.base import version_ref
from schemas.notices import NoticeUpdated

__all__ = ["notice_updated"]


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
