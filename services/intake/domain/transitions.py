"""Typed state changes of a notice: each rule decides one and returns it with its event.

A `Transition` is everything one change writes: the notice row as it becomes, the
version it records, the audit entry and the event to publish. The repository applies
it in one call (row + version + audit + outbox), so no use case repeats that sequence
by hand and no change can forget a part of it.

    (new) -> received -> updated* -> cancelled | expired
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from schemas.notices import (
    CancelReason,
    NoticeCancelled,
    NoticeReceived,
    NoticeUpdated,
    ReceivedVia,
)
from services.common.auth import Principal
from services.intake.domain.records import NoticeRecord, VersionRecord
from services.intake.domain.rules import (
    RestrictedDetail,
    fingerprint_key_id,
    msg_type_for,
    references_for,
    restricted_fingerprints,
)

__all__ = [
    "AuditAction",
    "AuditNote",
    "NoticeEvent",
    "Transition",
    "cancel",
    "expire",
    "purge",
    "receive",
    "restricted_read",
    "restricted_refused",
    "revise",
]

NoticeEvent = NoticeReceived | NoticeUpdated | NoticeCancelled
AuditAction = Literal[
    "notice.created",
    "notice.updated",
    "notice.cancelled",
    "notice.expired",
    "notice.restricted_purged",
    "notice.restricted_read",
    "notice.restricted_refused",
]


@dataclass(frozen=True)
class AuditNote:
    """One entry for the hash-chained audit log: ids, roles and reason codes only."""

    action: AuditAction
    notice_id: str
    version: int
    details: Mapping[str, Any]
    actor: Principal | None = None


@dataclass(frozen=True)
class Transition:
    """One decided change of a notice, applied at once by the repository."""

    notice: NoticeRecord  # the row as it is after the change
    audit: AuditNote
    created: bool = False  # insert the row (the first version) instead of updating it
    version: VersionRecord | None = None  # the version this change records, if any
    event: NoticeEvent | None = None  # expiry and purge publish nothing
    purge_restricted: bool = False  # drop the sealed detail of every version


def _snapshot(version: VersionRecord, detail: RestrictedDetail, key: bytes) -> dict[str, Any]:
    """The releasable content of a version plus fingerprints: never the restricted terms."""
    return {
        "notice_id": version.notice_id,
        "version": version.version,
        "references": version.version_refs,
        "received_at": version.received_at,
        "policy_annotations": version.policy_annotations,
        **version.releasable(),
        "restricted_fingerprints": restricted_fingerprints(key, detail),
        "fingerprint_key_id": fingerprint_key_id(key),
    }


def receive(
    version: VersionRecord,
    *,
    source_key: str,
    reference: str,
    detail: RestrictedDetail,
    fingerprint_key: bytes,
    actor: Principal,
) -> Transition:
    """A new notice from its first version (CAP Alert)."""
    # (new) -> received
    notice = NoticeRecord(
        id=version.notice_id,
        source_key=source_key,
        reference=reference,
        state="received",
        current_version=1,
        received_at=version.received_at,
        updated_at=version.received_at,
        closed_at=None,
        cancel_reason=None,
        restricted_purged_at=None,
        **version.releasable(),
    )
    details = {"msg_type": "Alert", "received_via": version.received_via}
    return Transition(
        notice=notice,
        created=True,
        version=version,
        audit=AuditNote("notice.created", notice.id, 1, details, actor),
        event=NoticeReceived.model_validate(_snapshot(version, detail, fingerprint_key)),
    )


def revise(
    notice: NoticeRecord,
    version: VersionRecord,
    *,
    detail: RestrictedDetail,
    fingerprint_key: bytes,
    actor: Principal,
) -> Transition:
    """The next version of an open notice (CAP Update); `revision_outcome` said so."""
    # received|updated -> updated
    updated = replace(
        notice,
        state="updated",
        current_version=version.version,
        updated_at=version.received_at,
        **version.releasable(),
    )
    details = {
        "msg_type": "Update",
        "received_via": version.received_via,
        "restricted_changed": version.restricted_changed,
    }
    return Transition(
        notice=updated,
        version=version,
        audit=AuditNote("notice.updated", notice.id, version.version, details, actor),
        event=NoticeUpdated.model_validate(_snapshot(version, detail, fingerprint_key)),
    )


def cancel(
    notice: NoticeRecord,
    previous: VersionRecord,
    *,
    reason: CancelReason,
    received_via: ReceivedVia,
    sent_at: datetime | None,
    digest: str,
    actor: Principal,
    now: datetime,
) -> Transition:
    """The cancellation as the notice's last version (CAP Cancel); `cancel_outcome` said so."""
    # received|updated -> cancelled
    number = notice.current_version + 1
    version = replace(
        previous,
        version=number,
        msg_type=msg_type_for(number, cancel=True),
        version_refs=references_for(uuid.UUID(notice.id), number),
        received_via=received_via,
        sent_at=sent_at or now,
        received_at=now,
        cancel_reason=reason,
        content_digest=digest,
        # The restricted detail in force stays on the version that sealed it.
        restricted_sealed=None,
        restricted_changed=False,
        actor_token_id=actor.token_id,
    )
    cancelled = replace(
        notice,
        state="cancelled",
        current_version=number,
        cancel_reason=reason,
        closed_at=now,
        updated_at=now,
    )
    event = NoticeCancelled.model_validate(
        {
            "notice_id": notice.id,
            "version": number,
            "references": version.version_refs,
            "status": notice.status,
            "sent_at": version.sent_at,
            "received_at": now,
            "reason": reason,
        }
    )
    details = {"msg_type": "Cancel", "reason": reason}
    return Transition(
        notice=cancelled,
        version=version,
        audit=AuditNote("notice.cancelled", notice.id, number, details, actor),
        event=event,
    )


def expire(notice: NoticeRecord, *, now: datetime) -> Transition:
    """Close an open notice whose window ended more than the grace period ago."""
    # received|updated -> expired
    details = {"window_end": notice.window_end.isoformat()}
    return Transition(
        notice=replace(notice, state="expired", closed_at=now),
        audit=AuditNote("notice.expired", notice.id, notice.current_version, details),
    )


def purge(notice: NoticeRecord, *, sealed_versions: int, now: datetime) -> Transition:
    """Drop a closed notice's restricted detail; the record and its audit trail remain."""
    details = {"versions_purged": sealed_versions}
    return Transition(
        notice=replace(notice, restricted_purged_at=now),
        audit=AuditNote("notice.restricted_purged", notice.id, notice.current_version, details),
        purge_restricted=True,
    )


def restricted_refused(notice: NoticeRecord, *, actor: Principal, reason: str) -> AuditNote:
    """The trace a refused read of restricted detail leaves: who asked, and why not."""
    return AuditNote(
        "notice.restricted_refused", notice.id, notice.current_version, {"reason": reason}, actor
    )


def restricted_read(notice: NoticeRecord, *, actor: Principal) -> AuditNote:
    """The trace a read of restricted detail leaves, even of a purged notice."""
    details = {"purged": notice.restricted_purged_at is not None}
    return AuditNote("notice.restricted_read", notice.id, notice.current_version, details, actor)
