"""What every notice use case shares: the write guard, visibility, idempotency, results.

Every use case that writes calls `begin_write` first, with the natural keys its
decision reads (an Idempotency-Key): it locks those keys for the transaction
(uow.requests.lock_keys), and a revision then row-locks its notice. That is what makes
the reads that decide a write (was this key used? which version is current?) safe
without retries, while requests about other notices run in parallel. A submission's
reference needs no lock: the notices table's unique index makes a concurrent request
with the same reference wait, and it then answers as a retry (repository.apply_new).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from services.common.auth import Principal
from services.intake.deps import IntakeDeps
from services.intake.domain import (
    IntakeNotFound,
    NoticeRecord,
    Operation,
    RestrictedDetail,
    SignatureRejected,
    StoredIdempotencyKey,
    VersionRecord,
    check_idempotency_key,
    source_key,
)
from services.intake.permissions import Access, sees_only_own
from services.intake.signatures import SignedRequest
from services.intake.unit_of_work import IntakeUoW

__all__ = [
    "NoticePageResult",
    "NoticeResult",
    "begin_write",
    "load_result",
    "owner_key",
    "remember_key",
    "repeated_request",
    "request_keys",
    "visible_notice",
]


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


def owner_key(deps: IntakeDeps, principal: Principal) -> str:
    """The keyed hash that stands for the caller's field office in the database."""
    return source_key(deps.fingerprint_key, principal.subject)


async def begin_write(
    uow: IntakeUoW, *, signed: SignedRequest | None, now: datetime, keys: Sequence[str] = ()
) -> None:
    """Lock the request's natural `keys`, then refuse a signed request accepted once already."""
    if keys:
        await uow.requests.lock_keys(keys)
    if signed is None:
        return
    first_time = await uow.requests.record_signature(
        fingerprint=signed.fingerprint,
        signed_at=datetime.fromtimestamp(signed.signed_at, UTC),
        now=now,
    )
    if not first_time:
        raise SignatureRejected("replayed")


async def visible_notice(
    uow: IntakeUoW,
    *,
    deps: IntakeDeps,
    notice_id: str,
    principal: Principal,
    for_update: bool = False,
) -> NoticeRecord:
    """The notice if the caller may see it; raises IntakeNotFound otherwise.

    Another field office's notice answers exactly like a missing one, so ids cannot
    be probed for existence.
    """
    notice = await uow.notices.get(notice_id, for_update=for_update)
    if notice is None:
        raise IntakeNotFound(notice_id)
    if sees_only_own(principal.role) and not hmac.compare_digest(
        notice.source_key, owner_key(deps, principal)
    ):
        raise IntakeNotFound(notice_id)
    return notice


async def repeated_request(
    uow: IntakeUoW,
    key: str | None,
    *,
    owner: str,
    operation: Operation,
    notice_id: str | None,
    digest: str,
) -> StoredIdempotencyKey | None:
    """What the Idempotency-Key recorded when this request repeats it; None for a new one.

    Raises IntakeConflict when the key was used for a different request.
    """
    if key is None:
        return None
    stored = await uow.requests.idempotency_key(source_key=owner, key=key)
    if check_idempotency_key(stored, operation=operation, notice_id=notice_id, digest=digest):
        return stored
    return None


async def remember_key(
    uow: IntakeUoW,
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
        await uow.requests.remember_key(
            source_key=owner,
            key=key,
            operation=operation,
            notice_id=notice_id,
            digest=digest,
            now=now,
        )


async def load_result(
    uow: IntakeUoW, notice_id: str, *, access: Access, replayed: bool = False
) -> NoticeResult:
    """The notice with its versions, as written or found in this unit of work."""
    notice = await uow.notices.get(notice_id)
    assert notice is not None  # written or found in this very transaction
    versions = await uow.notices.versions(notice_id)
    return NoticeResult(notice, tuple(versions), access, replayed=replayed)


def request_keys(*, owner: str, reference: str | None, idempotency_key: str | None) -> list[str]:
    """The natural keys a write request decides on, for `begin_write` to lock."""
    keys = [f"reference:{owner}:{reference}"] if reference is not None else []
    if idempotency_key is not None:
        keys.append(f"idempotency-key:{owner}:{idempotency_key}")
    return keys
