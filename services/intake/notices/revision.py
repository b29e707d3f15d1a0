"""Changing a recorded notice: the next version (CAP Update) or its cancellation (Cancel).

Both recognise a retry: by Idempotency-Key, or by finding their own content already
current (an update) or the same reason already recorded (a cancellation). Answering a
retry as done, rather than as a version mismatch, is what makes them idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import assert_never

from services.common.auth import Principal
from services.common.logging import get_logger
from services.intake.deps import IntakeDeps
from services.intake.domain import (
    NoticeRecord,
    Operation,
    Transition,
    cancel_outcome,
    check_releasable_words,
    content_digest,
    revision_outcome,
)
from services.intake.domain import transitions as domain
from services.intake.notices.commands import NoticeCancellation, NoticeRevision
from services.intake.notices.guards import (
    NoticeResult,
    begin_write,
    load_result,
    owner_key,
    remember_key,
    repeated_request,
    request_keys,
    visible_notice,
)
from services.intake.notices.sealing import open_latest, restricted_detail, seal_version
from services.intake.permissions import access_for
from services.intake.signatures import SignedRequest
from services.intake.unit_of_work import IntakeUoW

__all__ = ["cancel_notice", "revise_notice"]

log = get_logger(__name__)

# Decides the change of a visible, row-locked notice; None when it is already recorded.
_Decide = Callable[[NoticeRecord], Awaitable[Transition | None]]


@dataclass(frozen=True)
class _ChangeRequest:
    principal: Principal
    notice_id: str
    operation: Operation
    digest: str
    idempotency_key: str | None
    signed: SignedRequest | None
    now: datetime


@dataclass(frozen=True)
class _Change:
    result: NoticeResult
    transition: Transition | None
    by_key: bool  # answered from the Idempotency-Key before anything was decided


async def revise_notice(
    uow: IntakeUoW,
    *,
    deps: IntakeDeps,
    principal: Principal,
    notice_id: str,
    revision: NoticeRevision,
    idempotency_key: str | None,
    signed: SignedRequest | None,
    now: datetime,
) -> NoticeResult:
    """Record the next version of a notice (CAP Update), or recognise a retry."""
    digest = content_digest(deps.fingerprint_key, revision.content())

    async def decide(notice: NoticeRecord) -> Transition | None:
        return await _next_version(
            uow,
            deps=deps,
            notice=notice,
            revision=revision,
            digest=digest,
            actor=principal,
            now=now,
        )

    request = _ChangeRequest(principal, notice_id, "update", digest, idempotency_key, signed, now)
    change = await _change(uow, deps=deps, request=request, decide=decide)
    notice = change.result.notice
    if change.transition is not None:
        uow.after_commit(
            lambda: log.info("notice.updated", notice_id=notice.id, version=notice.current_version)
        )
    elif not change.by_key:
        uow.after_commit(lambda: log.info("notice.update_repeated", notice_id=notice.id))
    return change.result


async def cancel_notice(
    uow: IntakeUoW,
    *,
    deps: IntakeDeps,
    principal: Principal,
    notice_id: str,
    cancellation: NoticeCancellation,
    idempotency_key: str | None,
    signed: SignedRequest | None,
    now: datetime,
) -> NoticeResult:
    """Record the cancellation as the notice's last version (CAP Cancel), or its retry."""
    digest = content_digest(deps.fingerprint_key, cancellation.content())

    async def decide(notice: NoticeRecord) -> Transition | None:
        return await _cancellation(
            uow, notice=notice, cancellation=cancellation, digest=digest, actor=principal, now=now
        )

    request = _ChangeRequest(principal, notice_id, "cancel", digest, idempotency_key, signed, now)
    change = await _change(uow, deps=deps, request=request, decide=decide)
    notice = change.result.notice
    if change.transition is not None:
        uow.after_commit(
            lambda: log.info(
                "notice.cancelled",
                notice_id=notice.id,
                version=notice.current_version,
                reason=cancellation.reason,
            )
        )
    return change.result


async def _next_version(
    uow: IntakeUoW,
    *,
    deps: IntakeDeps,
    notice: NoticeRecord,
    revision: NoticeRevision,
    digest: str,
    actor: Principal,
    now: datetime,
) -> Transition | None:
    """The update of a visible notice; None when its content is already current."""
    versions = await uow.notices.versions(notice.id)
    outcome = revision_outcome(
        notice.state,
        current_digest=versions[-1].content_digest,
        digest=digest,
        current_version=notice.current_version,
        expected_version=revision.expected_version,
    )
    match outcome:
        case "unchanged":
            return None
        case "revise":
            detail = restricted_detail(revision, actor)
            previous = open_latest(deps.keyring, notice.id, versions)
            # The previous version's terms too: moving a name out of `restricted` and into
            # the summary is the same leak.
            earlier = previous.identifying_words if previous is not None else ()
            check_releasable_words(revision.releasable(), [*detail.identifying_words, *earlier])
            version = seal_version(
                deps,
                notice_id=notice.id,
                version=notice.current_version + 1,
                content=revision,
                detail=detail,
                restricted_changed=previous is None or previous.matter() != detail.matter(),
                digest=digest,
                actor=actor,
                now=now,
            )
            return domain.revise(
                notice, version, detail=detail, fingerprint_key=deps.fingerprint_key, actor=actor
            )
        case _:
            assert_never(outcome)


async def _cancellation(
    uow: IntakeUoW,
    *,
    notice: NoticeRecord,
    cancellation: NoticeCancellation,
    digest: str,
    actor: Principal,
    now: datetime,
) -> Transition | None:
    """The cancellation of a visible notice; None when the same one is already recorded."""
    outcome = cancel_outcome(
        notice.state,
        current_reason=notice.cancel_reason,
        reason=cancellation.reason,
        current_version=notice.current_version,
        expected_version=cancellation.expected_version,
    )
    match outcome:
        case "already_cancelled":
            return None
        case "cancel":
            previous = await uow.notices.version(notice.id, notice.current_version)
            assert previous is not None  # the current version always exists
            return domain.cancel(
                notice,
                previous,
                reason=cancellation.reason,
                received_via=cancellation.received_via,
                sent_at=cancellation.sent_at,
                digest=digest,
                actor=actor,
                now=now,
            )
        case _:
            assert_never(outcome)


async def _change(
    uow: IntakeUoW, *, deps: IntakeDeps, request: _ChangeRequest, decide: _Decide
) -> _Change:
    """The steps an update and a cancellation share, around the decision itself."""
    owner = owner_key(deps, request.principal)
    access = access_for(request.principal, in_directory=False)  # field offices only
    keys = request_keys(owner=owner, reference=None, idempotency_key=request.idempotency_key)
    await begin_write(uow, signed=request.signed, now=request.now, keys=keys)
    notice = await visible_notice(
        uow, deps=deps, notice_id=request.notice_id, principal=request.principal, for_update=True
    )
    key = request.idempotency_key
    repeated = await repeated_request(
        uow,
        key,
        owner=owner,
        operation=request.operation,
        notice_id=notice.id,
        digest=request.digest,
    )
    if repeated is not None:
        result = await load_result(uow, notice.id, access=access, replayed=True)
        return _Change(result, None, by_key=True)
    transition = await decide(notice)
    if transition is not None:
        await uow.notices.apply(transition, now=request.now)
    await remember_key(
        uow,
        key,
        owner=owner,
        operation=request.operation,
        notice_id=notice.id,
        digest=request.digest,
        now=request.now,
    )
    result = await load_result(uow, notice.id, access=access, replayed=transition is None)
    return _Change(result, transition, by_key=False)
