"""Restricted detail in and out of a version: gathered, sealed at rest, opened, scrubbed.

Plaintext detail exists only in memory while a request handles it; `scrubbed` keeps
every restricted string out of log lines for that time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from services.common.auth import Principal
from services.common.logging import holding_sensitive_values
from services.intake.crypto import KeyRing
from services.intake.deps import IntakeDeps
from services.intake.domain import RestrictedDetail, VersionRecord, msg_type_for, references_for
from services.intake.notices.commands import NoticeContent

__all__ = ["open_latest", "restricted_detail", "scrubbed", "seal_version"]


def scrubbed(values: Iterable[str]) -> holding_sensitive_values:
    """Scrub these restricted values from every log line while the block runs."""
    # The holder itself, not a generator around it: one context manager a request.
    return holding_sensitive_values([value for value in values if value])


def restricted_detail(content: NoticeContent, principal: Principal) -> RestrictedDetail:
    """The restricted detail a submission or revision carries, and who recorded it."""
    restricted = content.restricted
    return RestrictedDetail(
        field_office_id=principal.subject,
        field_office_name=content.source.field_office_name,
        agent_name=content.source.agent.name,
        agent_phone=content.source.agent.phone,
        agent_email=content.source.agent.email,
        recorded_by=principal.name,
        names=tuple(restricted.names),
        addresses=tuple(restricted.addresses),
        vehicles=tuple(restricted.vehicles),
        exact_locations=tuple(restricted.exact_locations),
        free_text=restricted.free_text,
    )


def _aad(notice_id: str, version: int) -> bytes:
    # Binds each sealed value to its row: a ciphertext pasted elsewhere does not open.
    return f"aviso-intake/notice/{notice_id}/v{version}".encode("ascii")


def seal_version(
    deps: IntakeDeps,
    *,
    notice_id: str,
    version: int,
    content: NoticeContent,
    detail: RestrictedDetail,
    restricted_changed: bool,
    digest: str,
    actor: Principal,
    now: datetime,
) -> VersionRecord:
    """A new version of `content`: policy annotations frozen, restricted detail sealed."""
    return VersionRecord(
        notice_id=notice_id,
        version=version,
        msg_type=msg_type_for(version),
        version_refs=references_for(uuid.UUID(notice_id), version),
        status=content.status,
        received_via=content.received_via,
        operation_type=content.operation_type,
        public_safety_nexus=content.public_safety_nexus,
        window_start=content.window_start,
        window_end=content.window_end,
        area=content.area,
        area_code=content.area_code,
        summary=content.summary,
        sent_at=content.sent_at or now,
        received_at=now,
        cancel_reason=None,
        policy_annotations=deps.policy.annotation_values(
            operation_type=content.operation_type,
            public_safety_nexus=content.public_safety_nexus,
            status=content.status,
        ),
        policy_version=deps.policy.version,
        content_digest=digest,
        restricted_sealed=deps.keyring.encrypt(detail.to_json(), aad=_aad(notice_id, version)),
        restricted_changed=restricted_changed,
        actor_token_id=actor.token_id,
    )


def open_latest(
    keyring: KeyRing, notice_id: str, versions: Iterable[VersionRecord]
) -> RestrictedDetail | None:
    """The restricted detail in force: that of the latest version holding some."""
    for version in sorted(versions, key=lambda v: v.version, reverse=True):
        if version.restricted_sealed is not None:
            raw = keyring.decrypt(version.restricted_sealed, aad=_aad(notice_id, version.version))
            return RestrictedDetail.from_json(raw)
    return None
