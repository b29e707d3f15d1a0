"""The records of rumor control as use cases see them: plain frozen dataclasses, no ORM.

State fields carry their Literal types: a bulletin is drafted, rejected, published,
superseded (another bulletin of its rumor replaced it), retracted or withdrawn (a draft that
may no longer be approved); each of its versions is drafted, published, rejected or
withdrawn.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from schemas.base import MsgType, Status
from schemas.bulletins import BulletinKind, PublishChannel
from schemas.deliveries import DeliveryFailureReason
from schemas.rumors import RumorAssessment
from services.common.delivery.sms_reports import ReportStatus

__all__ = [
    "AuditEntry",
    "BulletinRow",
    "BulletinState",
    "DeliveryRow",
    "NoticeRow",
    "ReceiptRow",
    "ReportRow",
    "RumorRow",
    "Texts",
    "VersionApplied",
    "VersionRow",
    "VersionState",
]

# What the public sees of a bulletin as a whole.
BulletinState = Literal["drafted", "rejected", "published", "superseded", "retracted", "withdrawn"]
# One version's own state: a Cancel version is published at once.
VersionState = Literal["drafted", "published", "rejected", "withdrawn"]
# A version's texts as stored: language -> section (headline, body, sms, radio) -> text.
Texts = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class NoticeRow:
    """The local projection of one notice."""

    notice_id: uuid.UUID
    version: int
    status: Status
    area: str | None
    area_code: str | None
    window_start: datetime | None
    window_end: datetime | None
    cancelled_at: datetime | None
    fingerprints: frozenset[str]
    key_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VersionApplied:
    """What projecting a notice version found: whether the notice was new here, and
    whether an acknowledgement was waiting for it (its standby request now taken)."""

    first_seen: bool
    standby_requested: bool


@dataclass(frozen=True)
class RumorRow:
    """One rumor of the ledger."""

    rumor_id: uuid.UUID
    status: Status
    area_code: str | None
    area: str | None
    place_key: str | None
    report_count: int
    channels: tuple[str, ...]
    first_reported_at: datetime
    last_reported_at: datetime
    first_observed_at: datetime
    last_observed_at: datetime
    assessment: RumorAssessment | None
    assessment_revision: int
    as_of: datetime | None
    expires_at: datetime | None
    assessed_by: uuid.UUID | None
    assessed_by_name: str | None
    linked_notice_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class ReportRow:
    """One report as heard (stays in rumor_control)."""

    report_id: uuid.UUID
    rumor_id: uuid.UUID
    claim: str
    place_as_heard: str
    channel: str
    organisation: str | None
    language: str | None
    reporter_name: str
    observed_at: datetime | None
    reported_at: datetime
    reporter_id: uuid.UUID | None = None


@dataclass(frozen=True)
class BulletinRow:
    """A bulletin across its versions."""

    bulletin_id: uuid.UUID
    kind: BulletinKind
    status: Status
    state: BulletinState
    current_version: int
    template_id: str
    rumor_id: uuid.UUID | None
    notice_ids: tuple[uuid.UUID, ...]
    area_code: str | None
    first_reported_at: datetime | None
    created_at: datetime
    updated_at: datetime
    standby_for_notice: uuid.UUID | None = None
    # The bulletin of the same rumor (or notice standby) that replaced this one.
    superseded_by: uuid.UUID | None = None
    # Why vetters should look at it again (e.g. "notice.cancelled"); cleared by a decision.
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionRow:
    """One version of a bulletin: its texts, guardrail findings and vetting."""

    bulletin_id: uuid.UUID
    version: int
    msg_type: MsgType
    references: tuple[str, ...]
    state: VersionState
    revision: int
    texts: Texts
    findings: tuple[Mapping[str, Any], ...]
    blocked_reasons: tuple[str, ...]
    channels: tuple[PublishChannel, ...]
    signoffs: Mapping[str, Mapping[str, Any]]
    author_id: uuid.UUID | None
    author_name: str | None
    drafted_at: datetime
    approved_by: uuid.UUID | None = None
    approved_at: datetime | None = None
    published_at: datetime | None = None
    expires_at: datetime | None = None
    rejected_by: uuid.UUID | None = None
    rejected_at: datetime | None = None
    reason_codes: tuple[str, ...] = field(default_factory=tuple)
    vetter_comment: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One step on a timeline, as read back."""

    at: datetime
    aggregate: str
    aggregate_id: uuid.UUID
    version: int | None
    action: str
    actor_id: uuid.UUID | None
    actor_name: str | None
    actor_role: str | None
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery of a bulletin version, as its delivery record stands.

    `state`: pending | sending | delivered | failed | skipped | cancelled (the engine's);
    `last_failure_reason`: the reason class of the last failed attempt, if any.
    """

    delivery_id: uuid.UUID
    bulletin_id: uuid.UUID
    version: int
    recipient_id: uuid.UUID
    channel: str
    language: str
    purpose: str
    state: str
    attempts: int
    last_failure_reason: DeliveryFailureReason | None
    updated_at: datetime
    delivered_at: datetime | None = None
    segments: int | None = None
    report: ReportStatus | None = None
    reported_at: datetime | None = None


@dataclass(frozen=True)
class ReceiptRow:
    """Who has read which version."""

    bulletin_id: uuid.UUID
    version: int
    recipient_id: uuid.UUID
    first_seen_at: datetime
    last_seen_at: datetime
    seen_count: int
