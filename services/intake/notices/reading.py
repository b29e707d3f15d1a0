"""Reading notices: one with its history (restricted detail for contact, audited), or a page."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.common.auth import Principal
from services.common.bounds import in_bounds
from services.common.logging import get_logger
from services.intake.deps import IntakeDeps
from services.intake.domain import transitions as domain
from services.intake.notices.guards import (
    NoticePageResult,
    NoticeResult,
    owner_key,
    visible_notice,
)
from services.intake.notices.sealing import open_latest
from services.intake.permissions import (
    Access,
    access_for,
    depends_on_directory,
    sees_only_own,
    visible_detail,
)
from services.intake.repository import Cursor, InvalidCursor, NoticeFilters
from services.intake.unit_of_work import IntakeUoW

__all__ = ["list_notices", "read_notice"]

log = get_logger(__name__)


async def read_notice(
    uow: IntakeUoW, *, deps: IntakeDeps, principal: Principal, notice_id: str, now: datetime
) -> NoticeResult:
    """One notice with its history; for a contact in the directory (or granted), also its
    restricted detail (audited)."""
    in_directory = depends_on_directory(principal) and await uow.directory.holds(principal.subject)
    access = access_for(principal, in_directory=in_directory)
    notice = await visible_notice(uow, deps=deps, notice_id=notice_id, principal=principal)
    versions = tuple(await uow.notices.versions(notice.id))
    if access is Access.METADATA:
        if depends_on_directory(principal):
            # A contact token whose subject is in no directory: metadata only, and the
            # refusal goes into the audit chain and a log line (the token id, never
            # anything it may not read).
            refusal = domain.restricted_refused(notice, actor=principal, reason="not_in_directory")
            await uow.audit.append(refusal, now=now)
            token_id = principal.token_id
            uow.after_commit(
                lambda: log.warning(
                    "notice.restricted_refused",
                    notice_id=notice.id,
                    token_id=token_id,
                    reason="not_in_directory",
                )
            )
        return NoticeResult(notice, versions, access)
    detail = visible_detail(access, open_latest(deps.keyring, notice.id, versions))
    # Every read of restricted detail leaves a trace, even of a purged notice:
    # the attempt is what an audit wants to see.
    await uow.audit.append(domain.restricted_read(notice, actor=principal), now=now)
    uow.after_commit(
        lambda: log.info(
            "notice.restricted_read", notice_id=notice.id, version=notice.current_version
        )
    )
    return NoticeResult(notice, versions, access, detail=detail)


async def list_notices(
    uow: IntakeUoW,
    *,
    deps: IntakeDeps,
    principal: Principal,
    filters: NoticeFilters,
    limit: int,
    offset: int,
    cursor: str | None,
) -> NoticePageResult:
    """Notices the caller may see, newest first; a field office sees only its own."""
    if sees_only_own(principal.role):
        filters = replace(filters, source_key=owner_key(deps, principal))
    after = _decode_cursor(cursor) if cursor else None
    # One extra row tells whether another page follows.
    rows = await uow.notices.page(filters, limit=limit + 1, offset=offset, after=after)
    page = rows[:limit]
    next_cursor = Cursor(page[-1].received_at, page[-1].id).encode() if len(rows) > limit else None
    return NoticePageResult(tuple(page), next_cursor)


def _decode_cursor(text: str) -> Cursor:
    """A cursor this service issued; InvalidCursor (400) for anything else.

    Bounded here (not only parsed): a hostile cursor's time near year 1 or 9999 with an
    offset overflows when converted to UTC, and one far outside the stored range is
    not one this service ever issued anyway.
    """
    try:
        cursor = Cursor.decode(text)
    except (OverflowError, RecursionError):
        raise InvalidCursor("the cursor is not one this service issued") from None
    if not in_bounds(cursor.received_at):
        raise InvalidCursor("the cursor is not one this service issued")
    return cursor
