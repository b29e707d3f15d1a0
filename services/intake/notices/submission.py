"""Submitting a notice: version 1 (CAP Alert), or the recognition of a retry.

A retry is recognised by its Idempotency-Key or, without one, by the field office's own
reference: the same reference with the same content answers with the recorded notice.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from services.common.auth import Principal
from services.common.ids import new_id
from services.common.logging import get_logger, info_on_request_line
from services.intake.deps import IntakeDeps
from services.intake.domain import (
    IntakeConflict,
    RestrictedDetail,
    Transition,
    check_releasable_words,
    content_digest,
)
from services.intake.domain import transitions as domain
from services.intake.notices.commands import NoticeSubmission
from services.intake.notices.guards import (
    NoticeResult,
    begin_write,
    load_result,
    owner_key,
    remember_key,
    repeated_request,
    request_keys,
)
from services.intake.notices.sealing import restricted_detail, seal_version
from services.intake.permissions import Access, access_for
from services.intake.signatures import SignedRequest
from services.intake.unit_of_work import IntakeUoW

__all__ = ["submit_notice"]

log = get_logger(__name__)


async def submit_notice(
    uow: IntakeUoW,
    *,
    deps: IntakeDeps,
    principal: Principal,
    submission: NoticeSubmission,
    idempotency_key: str | None,
    signed: SignedRequest | None,
    now: datetime,
    detail: RestrictedDetail | None = None,
) -> NoticeResult:
    """Record a new notice (version 1, CAP Alert), or recognise a retry of one.

    `detail`: the submission's restricted detail when the caller gathered it already (the
    route does, to scrub it from the log meanwhile); gathered here otherwise.
    """
    if detail is None:
        detail = restricted_detail(submission, principal)
    check_releasable_words(submission.releasable(), detail.identifying_words)
    owner = owner_key(deps, principal)
    content = submission.content()
    digest = content_digest(deps.fingerprint_key, content)
    request_digest = _request_digest(deps, submission, content, idempotency_key)
    access = access_for(principal, in_directory=False)  # field offices: never restricted
    # Only the Idempotency-Key is locked: the reference is guarded by the notices table's
    # unique index, which `apply_new` waits on and reads again (see fast_writes.py).
    keys = request_keys(owner=owner, reference=None, idempotency_key=idempotency_key)
    await begin_write(uow, signed=signed, now=now, keys=keys)
    replayed = await _replayed_by_key(uow, idempotency_key, owner, request_digest, access)
    if replayed is not None:
        return replayed

    notice_id = new_id()
    transition = _new_notice(
        deps,
        notice_id=notice_id,
        owner=owner,
        submission=submission,
        detail=detail,
        digest=digest,
        actor=principal,
        now=now,
    )
    # Written unless the reference is taken: then the id of the notice holding it.
    existing_id = await uow.notices.apply_new(transition, now=now)
    if existing_id is not None:
        await _check_same_content(uow, existing_id, submission=submission, digest=digest)
        notice_id = existing_id
    await remember_key(
        uow,
        idempotency_key,
        owner=owner,
        operation="create",
        notice_id=notice_id,
        digest=request_digest,
        now=now,
    )
    repeated = existing_id is not None
    uow.after_commit(lambda: _log_submitted(submission, notice_id, repeated=repeated))
    if not repeated and transition.version is not None:
        # Just written in this transaction: no need to read it back.
        return NoticeResult(transition.notice, (transition.version,), access)
    return await load_result(uow, notice_id, access=access, replayed=repeated)


def _request_digest(
    deps: IntakeDeps,
    submission: NoticeSubmission,
    content: dict[str, Any],
    idempotency_key: str | None,
) -> str:
    """What an Idempotency-Key stands for: the whole request, reference included. Only a
    key is compared with it: without one (most submissions) its canonical JSON and HMAC
    are not made."""
    if idempotency_key is None:
        return ""
    return content_digest(deps.fingerprint_key, {"reference": submission.reference, **content})


async def _replayed_by_key(
    uow: IntakeUoW, idempotency_key: str | None, owner: str, request_digest: str, access: Access
) -> NoticeResult | None:
    """The stored answer when this Idempotency-Key already created a notice."""
    stored = await repeated_request(
        uow,
        idempotency_key,
        owner=owner,
        operation="create",
        notice_id=None,
        digest=request_digest,
    )
    if stored is None:
        return None
    uow.after_commit(
        lambda: log.info("notice.submit_repeated", notice_id=stored.notice_id, by="key")
    )
    return await load_result(uow, stored.notice_id, access=access, replayed=True)


def _new_notice(
    deps: IntakeDeps,
    *,
    notice_id: str,
    owner: str,
    submission: NoticeSubmission,
    detail: RestrictedDetail,
    digest: str,
    actor: Principal,
    now: datetime,
) -> Transition:
    """A new notice's transition: version 1 sealed, its row, audit note and notice.received."""
    version = seal_version(
        deps,
        notice_id=notice_id,
        version=1,
        content=submission,
        detail=detail,
        restricted_changed=True,
        digest=digest,
        actor=actor,
        now=now,
    )
    return domain.receive(
        version,
        source_key=owner,
        reference=submission.reference,
        detail=detail,
        fingerprint_key=deps.fingerprint_key,
        actor=actor,
    )


async def _check_same_content(
    uow: IntakeUoW, notice_id: str, *, submission: NoticeSubmission, digest: str
) -> None:
    """A reused reference must carry the content first recorded under it."""
    first = await uow.notices.version(notice_id, 1)
    if (
        first is None
        or first.content_digest is None
        or not hmac.compare_digest(first.content_digest, digest)
    ):
        raise IntakeConflict(
            "reference-conflict",
            f"Reference {submission.reference!r} already names a notice with "
            "different content. Change that notice with "
            f"POST /v1/notices/{notice_id}/update, or use a new reference.",
            notice_id=notice_id,
        )


def _log_submitted(submission: NoticeSubmission, notice_id: str, *, repeated: bool) -> None:
    if repeated:
        log.info("notice.submit_repeated", notice_id=notice_id, by="reference")
        return
    # The request's own line (with its status and duration) when a request submitted it.
    info_on_request_line(
        log,
        "notice.received",
        notice_id=notice_id,
        version=1,
        status=submission.status,
        operation_type=submission.operation_type,
        received_via=submission.received_via,
    )
