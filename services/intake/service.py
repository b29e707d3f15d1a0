"""Use cases of intake: each owns exactly one transaction.

Every use case that writes takes the audit chain's lock first (see audit.py). That
serialises intake's writes, which is what makes the reads that decide a write
(does this reference exist? which version is current?) safe without retries: a
concurrent request with the same reference waits, then sees the committed notice.
Notices are rare; a single writer costs nothing that matters here.

Events go to the outbox in the same transaction as the state change, so a notice is
announced if and only if it was recorded.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.fingerprints import MIN_KEY_BYTES
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from services.common.auth import Principal, Role
from services.common.db import UnitOfWork
from services.common.logging import forget_sensitive_value, get_logger, register_sensitive_value
from services.common.outbox import enqueue
from services.intake import audit
from services.intake import repository as repo
from services.intake.config import IntakeSettings
from services.intake.crypto import KeyRing
from services.intake.domain import (
    Access,
    IntakeConflict,
    IntakeNotFound,
    Operation,
    RestrictedDetail,
    SignatureReplayed,
    access_for,
    cancel_outcome,
    check_idempotency_key,
    content_digest,
    expiry_due,
    fingerprint_key_id,
    msg_type_for,
    purge_due,
    references_for,
    restricted_fingerprints,
    revision_outcome,
    source_key,
)
from services.intake.models import (
    NoticeCancellation,
    NoticeContent,
    NoticeRevision,
    NoticeSubmission,
)
from services.intake.policy import NoticeFacts, Policy
from services.intake.repository import Cursor, NoticeFilters, NoticeRecord, VersionRecord

__all__ = [
    "IntakeContext",
    "NoticePageResult",
    "NoticeResult",
    "SignedRequest",
    "SweepReport",
    "cancel_notice",
    "expire_notices",
    "list_notices",
    "prune_records",
    "purge_restricted",
    "read_notice",
    "revise_notice",
    "scrubbed",
    "submit_notice",
    "sweep",
]

log = get_logger(__name__)

_SWEEP_BATCH = 100


@dataclass(frozen=True)
class IntakeContext:
    """What the use cases need besides their arguments; built once by the composition root."""

    sessions: async_sessionmaker[AsyncSession]
    keyring: KeyRing
    policy: Policy
    fingerprint_key: bytes
    event_source: str
    expiry_grace: timedelta
    retention: timedelta
    idempotency_ttl: timedelta
    replay_ttl: timedelta

    @classmethod
    def build(
        cls,
        *,
        settings: IntakeSettings,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        policy: Policy,
        event_source: str,
    ) -> IntakeContext:
        """Derive the context from settings."""
        # A signed request older than tolerance (or further ahead than the skew) is
        # refused before the replay table is asked, so entries may go after that.
        replay_s = settings.intake_signature_tolerance_s + settings.intake_signature_future_skew_s
        fingerprint_key = settings.fingerprint_key.get_secret_value().encode("utf-8")
        if len(fingerprint_key) < MIN_KEY_BYTES:
            # Checked at start: otherwise the first notice would fail, not the deployment.
            raise ValueError(f"AVISO_FINGERPRINT_KEY must be at least {MIN_KEY_BYTES} bytes")
        return cls(
            sessions=sessions,
            keyring=keyring,
            policy=policy,
            fingerprint_key=fingerprint_key,
            event_source=event_source,
            expiry_grace=timedelta(seconds=settings.intake_expiry_grace_s),
            retention=timedelta(seconds=settings.intake_restricted_retention_s),
            idempotency_ttl=timedelta(seconds=settings.intake_idempotency_ttl_s),
            replay_ttl=timedelta(seconds=replay_s + 60),
        )


@dataclass(frozen=True)
class SignedRequest:
    """A request whose `Aviso-Signature` verified: what to remember against replays."""

    fingerprint: str
    signed_at: int


@dataclass(frozen=True)
class NoticeResult:
    """A notice as a use case leaves it; `detail` only for callers cleared to read it."""

    notice: NoticeRecord
    versions: tuple[VersionRecord, ...]
    access: Access
    replayed: bool = False
    detail: RestrictedDetail | None = None


@dataclass(frozen=True)
class NoticePageResult:
    """One page of notices."""

    notices: tuple[NoticeRecord, ...]
    next_cursor: str | None


@contextmanager
def scrubbed(values: Iterable[str]) -> Iterator[None]:
    """Scrub these restricted values from every log line while the block runs."""
    held = [value for value in values if value]
    for value in held:
        register_sensitive_value(value)
    try:
        yield
    finally:
        for value in held:
            forget_sensitive_value(value)


# --- helpers ----------------------------------------------------------------------


def _aad(notice_id: str, version: int) -> bytes:
    # Binds each sealed value to its row: a ciphertext pasted elsewhere does not open.
    return f"aviso-intake/notice/{notice_id}/v{version}".encode("ascii")


def _detail(content: NoticeContent, principal: Principal) -> RestrictedDetail:
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


def _open_latest(
    keyring: KeyRing, notice_id: str, versions: Iterable[VersionRecord]
) -> RestrictedDetail | None:
    """The restricted detail in force: that of the latest version holding some."""
    for version in sorted(versions, key=lambda v: v.version, reverse=True):
        if version.restricted_sealed is not None:
            raw = keyring.decrypt(version.restricted_sealed, aad=_aad(notice_id, version.version))
            return RestrictedDetail.from_json(raw)
    return None


def _releasable(content: NoticeContent, *, received_at: datetime) -> dict[str, Any]:
    return {
        "status": content.status,
        "received_via": content.received_via,
        "operation_type": content.operation_type,
        "public_safety_nexus": content.public_safety_nexus,
        "window_start": content.window_start,
        "window_end": content.window_end,
        "area": content.area,
        "area_code": content.area_code,
        "summary": content.summary,
        "sent_at": content.sent_at or received_at,
    }


def _version_record(
    ctx: IntakeContext,
    *,
    notice_id: str,
    version: int,
    content: NoticeContent,
    detail: RestrictedDetail,
    restricted_changed: bool,
    digest: str,
    principal: Principal,
    now: datetime,
) -> VersionRecord:
    facts = NoticeFacts(
        operation_type=content.operation_type,
        public_safety_nexus=content.public_safety_nexus,
        status=content.status,
    )
    annotations = ctx.policy.annotate(facts)
    return VersionRecord(
        notice_id=notice_id,
        version=version,
        msg_type=msg_type_for(version),
        version_refs=references_for(uuid.UUID(notice_id), version),
        received_at=now,
        cancel_reason=None,
        policy_annotations=tuple(a.model_dump() for a in annotations),
        policy_version=ctx.policy.version,
        content_digest=digest,
        restricted_sealed=ctx.keyring.encrypt(detail.to_json(), aad=_aad(notice_id, version)),
        restricted_changed=restricted_changed,
        actor_token_id=principal.token_id,
        **_releasable(content, received_at=now),
    )


def _snapshot_event(
    ctx: IntakeContext, version: VersionRecord, detail: RestrictedDetail
) -> dict[str, Any]:
    """The releasable content of a version plus fingerprints: never the restricted terms."""
    return {
        "notice_id": version.notice_id,
        "version": version.version,
        "references": version.version_refs,
        "status": version.status,
        "sent_at": version.sent_at,
        "received_at": version.received_at,
        "received_via": version.received_via,
        "operation_type": version.operation_type,
        "public_safety_nexus": version.public_safety_nexus,
        "window_start": version.window_start,
        "window_end": version.window_end,
        "area": version.area,
        "area_code": version.area_code,
        "summary": version.summary,
        "policy_annotations": version.policy_annotations,
        "restricted_fingerprints": restricted_fingerprints(ctx.fingerprint_key, detail),
        "fingerprint_key_id": fingerprint_key_id(ctx.fingerprint_key),
    }


async def _check_replay(
    session: AsyncSession, signed: SignedRequest | None, *, now: datetime
) -> None:
    if signed is None:
        return
    first_time = await repo.record_signature(
        session,
        fingerprint=signed.fingerprint,
        signed_at=datetime.fromtimestamp(signed.signed_at, UTC),
        now=now,
    )
    if not first_time:
        raise SignatureReplayed


def _owner_key(ctx: IntakeContext, principal: Principal) -> str:
    return source_key(ctx.fingerprint_key, principal.subject)


async def _visible_notice(
    ctx: IntakeContext,
    session: AsyncSession,
    notice_id: str,
    principal: Principal,
    *,
    for_update: bool = False,
) -> NoticeRecord:
    """The notice if the caller may see it; a field office sees only its own.

    Another field office's notice answers exactly like a missing one, so ids cannot
    be probed for existence.
    """
    notice = await repo.get_notice(session, notice_id, for_update=for_update)
    if notice is None:
        raise IntakeNotFound(notice_id)
    if principal.role is Role.FIELD_OFFICE and not hmac.compare_digest(
        notice.source_key, _owner_key(ctx, principal)
    ):
        raise IntakeNotFound(notice_id)
    return notice


async def _remember_key(
    session: AsyncSession,
    key: str | None,
    *,
    owner: str,
    operation: Operation,
    notice_id: str,
    digest: str,
    now: datetime,
) -> None:
    """Store what an Idempotency-Key was used for, when the request carried one."""
    if key is not None:
        await repo.save_idempotency_key(
            session,
            source_key=owner,
            key=key,
            operation=operation,
            notice_id=notice_id,
            digest=digest,
            now=now,
        )


async def _result(
    session: AsyncSession, notice_id: str, *, access: Access, replayed: bool = False
) -> NoticeResult:
    notice = await repo.get_notice(session, notice_id)
    assert notice is not None  # written or found in this very transaction
    versions = await repo.get_versions(session, notice_id)
    return NoticeResult(notice, tuple(versions), access, replayed=replayed)


# --- commands -----------------------------------------------------------------------


async def submit_notice(
    ctx: IntakeContext,
    *,
    principal: Principal,
    submission: NoticeSubmission,
    idempotency_key: str | None,
    signed: SignedRequest | None,
    now: datetime,
) -> NoticeResult:
    """Record a new notice (version 1, CAP Alert), or recognise a retry of one."""
    detail = _detail(submission, principal)
    owner = _owner_key(ctx, principal)
    digest = content_digest(ctx.fingerprint_key, submission.content())
    request_digest = content_digest(
        ctx.fingerprint_key, {"reference": submission.reference, **submission.content()}
    )
    access = access_for(principal.role)
    with scrubbed(detail.values()):
        async with UnitOfWork(ctx.sessions) as uow:
            session = uow.session
            await audit.lock_chain(session)
            await _check_replay(session, signed, now=now)
            if idempotency_key is not None:
                stored = await repo.get_idempotency_key(
                    session, source_key=owner, key=idempotency_key
                )
                if check_idempotency_key(
                    stored, operation="create", notice_id=None, digest=request_digest
                ):
                    assert stored is not None
                    result = await _result(session, stored.notice_id, access=access, replayed=True)
                    await uow.commit()
                    log.info("notice.submit_repeated", notice_id=stored.notice_id, by="key")
                    return result

            existing = await repo.find_by_reference(
                session, source_key=owner, reference=submission.reference
            )
            if existing is not None:
                first = await repo.get_version(session, existing.id, 1)
                if (
                    first is None
                    or first.content_digest is None
                    or not hmac.compare_digest(first.content_digest, digest)
                ):
                    raise IntakeConflict(
                        "reference-conflict",
                        f"Reference {submission.reference!r} already names a notice with "
                        "different content. Change that notice with "
                        f"POST /v1/notices/{existing.id}/update, or use a new reference.",
                        notice_id=existing.id,
                    )
                await _remember_key(
                    session,
                    idempotency_key,
                    owner=owner,
                    operation="create",
                    notice_id=existing.id,
                    digest=request_digest,
                    now=now,
                )
                result = await _result(session, existing.id, access=access, replayed=True)
                await uow.commit()
                log.info("notice.submit_repeated", notice_id=existing.id, by="reference")
                return result

            notice_id = str(uuid.uuid4())
            version = _version_record(
                ctx,
                notice_id=notice_id,
                version=1,
                content=submission,
                detail=detail,
                restricted_changed=True,
                digest=digest,
                principal=principal,
                now=now,
            )
            await repo.insert_notice(
                session,
                NoticeRecord(
                    id=notice_id,
                    source_key=owner,
                    reference=submission.reference,
                    state="received",
                    current_version=1,
                    updated_at=now,
                    closed_at=None,
                    cancel_reason=None,
                    restricted_purged_at=None,
                    **_releasable(submission, received_at=now),
                    received_at=now,
                ),
            )
            await repo.insert_version(session, version)
            await _remember_key(
                session,
                idempotency_key,
                owner=owner,
                operation="create",
                notice_id=notice_id,
                digest=request_digest,
                now=now,
            )
            event = NoticeReceived.model_validate(_snapshot_event(ctx, version, detail))
            await enqueue(session, event, source=ctx.event_source)
            await audit.append(
                session,
                action="notice.created",
                now=now,
                notice_id=notice_id,
                version=1,
                actor=principal,
                details={"msg_type": "Alert", "received_via": submission.received_via},
            )
            result = await _result(session, notice_id, access=access)
            await uow.commit()
    log.info(
        "notice.received",
        notice_id=notice_id,
        version=1,
        status=submission.status,
        operation_type=submission.operation_type,
        received_via=submission.received_via,
    )
    return result


async def revise_notice(
    ctx: IntakeContext,
    *,
    principal: Principal,
    notice_id: str,
    revision: NoticeRevision,
    idempotency_key: str | None,
    signed: SignedRequest | None,
    now: datetime,
) -> NoticeResult:
    """Record the next version of a notice (CAP Update), or recognise a retry."""
    detail = _detail(revision, principal)
    owner = _owner_key(ctx, principal)
    digest = content_digest(ctx.fingerprint_key, revision.content())
    access = access_for(principal.role)
    with scrubbed(detail.values()):
        async with UnitOfWork(ctx.sessions) as uow:
            session = uow.session
            await audit.lock_chain(session)
            await _check_replay(session, signed, now=now)
            notice = await _visible_notice(ctx, session, notice_id, principal, for_update=True)
            if idempotency_key is not None:
                stored = await repo.get_idempotency_key(
                    session, source_key=owner, key=idempotency_key
                )
                if check_idempotency_key(
                    stored, operation="update", notice_id=notice.id, digest=digest
                ):
                    result = await _result(session, notice.id, access=access, replayed=True)
                    await uow.commit()
                    return result
            versions = await repo.get_versions(session, notice.id)
            outcome = revision_outcome(
                notice.state,
                current_digest=versions[-1].content_digest,
                digest=digest,
                current_version=notice.current_version,
                expected_version=revision.expected_version,
            )
            if outcome == "revise":
                # notice: received|updated -> updated
                previous = _open_latest(ctx.keyring, notice.id, versions)
                number = notice.current_version + 1
                version = _version_record(
                    ctx,
                    notice_id=notice.id,
                    version=number,
                    content=revision,
                    detail=detail,
                    restricted_changed=previous is None or previous.matter() != detail.matter(),
                    digest=digest,
                    principal=principal,
                    now=now,
                )
                await repo.insert_version(session, version)
                await repo.update_notice(
                    session,
                    notice.id,
                    state="updated",
                    current_version=number,
                    updated_at=now,
                    **_releasable(revision, received_at=now),
                )
                event = NoticeUpdated.model_validate(_snapshot_event(ctx, version, detail))
                await enqueue(session, event, source=ctx.event_source)
                await audit.append(
                    session,
                    action="notice.updated",
                    now=now,
                    notice_id=notice.id,
                    version=number,
                    actor=principal,
                    details={
                        "msg_type": "Update",
                        "received_via": revision.received_via,
                        "restricted_changed": version.restricted_changed,
                    },
                )
            await _remember_key(
                session,
                idempotency_key,
                owner=owner,
                operation="update",
                notice_id=notice.id,
                digest=digest,
                now=now,
            )
            result = await _result(
                session, notice.id, access=access, replayed=outcome == "unchanged"
            )
            await uow.commit()
    if outcome == "revise":
        log.info("notice.updated", notice_id=notice.id, version=result.notice.current_version)
    else:
        log.info("notice.update_repeated", notice_id=notice.id)
    return result


async def cancel_notice(
    ctx: IntakeContext,
    *,
    principal: Principal,
    notice_id: str,
    cancellation: NoticeCancellation,
    idempotency_key: str | None,
    signed: SignedRequest | None,
    now: datetime,
) -> NoticeResult:
    """Record the cancellation as the notice's last version (CAP Cancel), or its retry."""
    owner = _owner_key(ctx, principal)
    digest = content_digest(ctx.fingerprint_key, cancellation.content())
    access = access_for(principal.role)
    async with UnitOfWork(ctx.sessions) as uow:
        session = uow.session
        await audit.lock_chain(session)
        await _check_replay(session, signed, now=now)
        notice = await _visible_notice(ctx, session, notice_id, principal, for_update=True)
        if idempotency_key is not None:
            stored = await repo.get_idempotency_key(session, source_key=owner, key=idempotency_key)
            if check_idempotency_key(
                stored, operation="cancel", notice_id=notice.id, digest=digest
            ):
                result = await _result(session, notice.id, access=access, replayed=True)
                await uow.commit()
                return result
        outcome = cancel_outcome(
            notice.state,
            current_reason=notice.cancel_reason,
            reason=cancellation.reason,
            current_version=notice.current_version,
            expected_version=cancellation.expected_version,
        )
        if outcome == "cancel":
            # notice: received|updated -> cancelled
            number = notice.current_version + 1
            previous = await repo.get_version(session, notice.id, notice.current_version)
            assert previous is not None
            version = replace(
                previous,
                version=number,
                msg_type=msg_type_for(number, cancel=True),
                version_refs=references_for(uuid.UUID(notice.id), number),
                received_via=cancellation.received_via,
                sent_at=cancellation.sent_at or now,
                received_at=now,
                cancel_reason=cancellation.reason,
                content_digest=digest,
                # The restricted detail in force stays on the version that sealed it.
                restricted_sealed=None,
                restricted_changed=False,
                actor_token_id=principal.token_id,
            )
            await repo.insert_version(session, version)
            await repo.update_notice(
                session,
                notice.id,
                state="cancelled",
                current_version=number,
                cancel_reason=cancellation.reason,
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
                    "reason": cancellation.reason,
                }
            )
            await enqueue(session, event, source=ctx.event_source)
            await audit.append(
                session,
                action="notice.cancelled",
                now=now,
                notice_id=notice.id,
                version=number,
                actor=principal,
                details={"msg_type": "Cancel", "reason": cancellation.reason},
            )
        await _remember_key(
            session,
            idempotency_key,
            owner=owner,
            operation="cancel",
            notice_id=notice.id,
            digest=digest,
            now=now,
        )
        result = await _result(
            session, notice.id, access=access, replayed=outcome == "already_cancelled"
        )
        await uow.commit()
    if outcome == "cancel":
        log.info(
            "notice.cancelled",
            notice_id=notice.id,
            version=result.notice.current_version,
            reason=cancellation.reason,
        )
    return result


# --- queries --------------------------------------------------------------------------


async def read_notice(
    ctx: IntakeContext, *, principal: Principal, notice_id: str, now: datetime
) -> NoticeResult:
    """One notice with its history; for `contact`, also its restricted detail (audited)."""
    access = access_for(principal.role)
    if access is Access.METADATA:
        async with ctx.sessions() as session:
            notice = await _visible_notice(ctx, session, notice_id, principal)
            versions = await repo.get_versions(session, notice.id)
        return NoticeResult(notice, tuple(versions), access)

    async with UnitOfWork(ctx.sessions) as uow:
        session = uow.session
        await audit.lock_chain(session)
        notice = await _visible_notice(ctx, session, notice_id, principal)
        versions = await repo.get_versions(session, notice.id)
        detail = _open_latest(ctx.keyring, notice.id, versions)
        # Every read of restricted detail leaves a trace, even of a purged notice:
        # the attempt is what an audit wants to see.
        await audit.append(
            session,
            action="notice.restricted_read",
            now=now,
            notice_id=notice.id,
            version=notice.current_version,
            actor=principal,
            details={"purged": notice.restricted_purged_at is not None},
        )
        await uow.commit()
    log.info("notice.restricted_read", notice_id=notice.id, version=notice.current_version)
    return NoticeResult(notice, tuple(versions), access, detail=detail)


async def list_notices(
    ctx: IntakeContext,
    *,
    principal: Principal,
    filters: NoticeFilters,
    limit: int,
    offset: int,
    cursor: str | None,
) -> NoticePageResult:
    """Notices the caller may see, newest first; a field office sees only its own."""
    if principal.role is Role.FIELD_OFFICE:
        filters = replace(filters, source_key=_owner_key(ctx, principal))
    after = Cursor.decode(cursor) if cursor else None
    async with ctx.sessions() as session:
        # One extra row tells whether another page follows.
        rows = await repo.list_notices(
            session, filters, limit=limit + 1, offset=offset, after=after
        )
    page = rows[:limit]
    next_cursor = Cursor(page[-1].received_at, page[-1].id).encode() if len(rows) > limit else None
    return NoticePageResult(tuple(page), next_cursor)


# --- sweeps ---------------------------------------------------------------------------


async def expire_notices(ctx: IntakeContext, *, now: datetime) -> int:
    """Move open notices whose window ended more than the grace period ago to expired."""
    async with UnitOfWork(ctx.sessions) as uow:
        session = uow.session
        await audit.lock_chain(session)
        candidates = await repo.notices_due_for_expiry(
            session, ended_before=now - ctx.expiry_grace, limit=_SWEEP_BATCH
        )
        due = [
            n
            for n in candidates
            if expiry_due(state=n.state, window_end=n.window_end, now=now, grace=ctx.expiry_grace)
        ]
        for notice in due:
            # notice: received|updated -> expired
            await repo.update_notice(session, notice.id, state="expired", closed_at=now)
            await audit.append(
                session,
                action="notice.expired",
                now=now,
                notice_id=notice.id,
                version=notice.current_version,
                details={"window_end": notice.window_end.isoformat()},
            )
        await uow.commit()
    for notice in due:
        log.info("notice.expired", notice_id=notice.id, version=notice.current_version)
    return len(due)


async def purge_restricted(ctx: IntakeContext, *, now: datetime) -> int:
    """Drop the restricted detail of notices closed longer than the retention period."""
    async with UnitOfWork(ctx.sessions) as uow:
        session = uow.session
        await audit.lock_chain(session)
        candidates = await repo.notices_due_for_purge(
            session, closed_before=now - ctx.retention, limit=_SWEEP_BATCH
        )
        due = [
            n
            for n in candidates
            if purge_due(
                state=n.state,
                closed_at=n.closed_at,
                purged_at=n.restricted_purged_at,
                now=now,
                retention=ctx.retention,
            )
        ]
        for notice in due:
            purged = await repo.purge_versions(session, notice.id)
            await repo.update_notice(session, notice.id, restricted_purged_at=now)
            await audit.append(
                session,
                action="notice.restricted_purged",
                now=now,
                notice_id=notice.id,
                version=notice.current_version,
                details={"versions_purged": purged},
            )
        await uow.commit()
    for notice in due:
        log.info("notice.restricted_purged", notice_id=notice.id)
    return len(due)


async def prune_records(ctx: IntakeContext, *, now: datetime) -> int:
    """Forget signature replays and Idempotency-Keys older than they can matter."""
    async with UnitOfWork(ctx.sessions) as uow:
        removed = await repo.delete_replays_before(uow.session, now - ctx.replay_ttl)
        removed += await repo.delete_idempotency_keys_before(uow.session, now - ctx.idempotency_ttl)
        await uow.commit()
    return removed


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    expired: int
    purged: int
    pruned: int


async def sweep(ctx: IntakeContext, *, now: datetime) -> SweepReport:
    """Expire, purge and prune; each step in its own transaction, in batches until done."""
    expired = purged = 0
    while (count := await expire_notices(ctx, now=now)) > 0:
        expired += count
    while (count := await purge_restricted(ctx, now=now)) > 0:
        purged += count
    pruned = await prune_records(ctx, now=now)
    return SweepReport(expired, purged, pruned)
