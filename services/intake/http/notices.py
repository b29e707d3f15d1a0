"""The /v1/notices routes: parse the request, call one use case in one unit of work, present.

Who may call each route is read from permissions.py; object-level checks (a field office
sees only its own notices) and every business rule live in the use cases and the domain.
The routes close over the one `IntakeDeps` the composition root built.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.routing import APIRoute

from schemas.base import Status
from schemas.notices import OperationType
from services.common.auth import Principal, require_roles
from services.common.bounds import MAX_OFFSET, MAX_PAGE_SIZE
from services.common.problems import bad_request
from services.common.signing import SIGNATURE_HEADER
from services.intake import notices
from services.intake.deps import IntakeDeps
from services.intake.domain import NoticeState
from services.intake.http.plain_submission import PlainSubmissionRoute
from services.intake.http.views import (
    NoticePage,
    NoticeView,
    RestrictedNoticeView,
    notice_summary,
    notice_view,
)
from services.intake.notices.commands import (
    IDEMPOTENCY_KEY_PATTERN,
    NoticeCancellation,
    NoticeRevision,
    NoticeSubmission,
    UtcDatetime,
)
from services.intake.notices.sealing import restricted_detail, scrubbed
from services.intake.permissions import Action, roles_for
from services.intake.repository import NoticeFilters
from services.intake.signatures import SignedRequest
from services.intake.unit_of_work import IntakeUnitOfWork

__all__ = ["MAX_PAGE", "REPLAYED_HEADER", "SUBMISSION_PATH", "notices_router"]

# Where notices are submitted (and listed): the routes' prefix.
SUBMISSION_PATH = "/v1/notices"

REPLAYED_HEADER = "Idempotent-Replayed"
MAX_PAGE = MAX_PAGE_SIZE

_T = TypeVar("_T")

Submitter = Annotated[Principal, Depends(require_roles(*roles_for(Action.SUBMIT)))]
Updater = Annotated[Principal, Depends(require_roles(*roles_for(Action.UPDATE)))]
Canceller = Annotated[Principal, Depends(require_roles(*roles_for(Action.CANCEL)))]
Reader = Annotated[Principal, Depends(require_roles(*roles_for(Action.READ)))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN.pattern,
        description="Repeat a request safely: the same key and content answer 200 once done.",
    ),
]

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request (invalid JSON or UTF-8, bad cursor)"},
    401: {"description": "No valid token, or an invalid request signature"},
    403: {"description": "The caller's role may not do this"},
    413: {"description": "Body larger than the configured limit"},
    415: {"description": "Body is not application/json"},
    422: {"description": "Body does not match the schema"},
}
_READ_PROBLEMS: dict[int | str, dict[str, Any]] = {
    k: v for k, v in _PROBLEMS.items() if k in (401, 403, 422)
}


async def _in_unit_of_work(
    deps: IntakeDeps,
    use_case: Callable[[IntakeUnitOfWork], Awaitable[_T]],
    *,
    restricted: Iterable[str] = (),
    lone_write_commits: bool = False,
) -> _T:
    """Run one use case in its own unit of work and commit; scrub `restricted` meanwhile."""
    unit_of_work = deps.unit_of_work()
    if lone_write_commits:
        unit_of_work.lone_write_commits()
    with scrubbed(restricted):
        async with unit_of_work as uow:
            result = await use_case(uow)
            await uow.commit()
    return result


def _mark(response: Response, result: notices.NoticeResult, *, created: bool) -> None:
    if result.replayed:
        response.status_code = 200
        response.headers[REPLAYED_HEADER] = "true"
    elif created:
        response.status_code = 201
        response.headers["Location"] = f"/v1/notices/{result.notice.id}"


def request_target(request: Request) -> str:
    """The path and query exactly as the client sent them: what a `v2` signature covers."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    target = bytes(raw).decode("latin-1")
    return f"{target}?{bytes(query).decode('latin-1')}" if query else target


def _signature(deps: IntakeDeps) -> Callable[[Request], Awaitable[SignedRequest | None]]:
    async def signed(request: Request) -> SignedRequest | None:
        header = request.headers.get(SIGNATURE_HEADER)
        body = await request.body() if header is not None else b""
        return deps.signatures.verify(
            header,
            body,
            method=request.method,
            target=request_target(request),
            now=int(deps.clock().timestamp()),
        )

    return signed


def notices_router(deps: IntakeDeps) -> APIRouter:
    """The notice routes over `deps`."""
    router = APIRouter(prefix=SUBMISSION_PATH, tags=["notices"])
    # A dependency, not a call in the route: it must refuse before the body is validated.
    signed: Any = Depends(_signature(deps))
    _submit_route(router, deps, signed)
    _list_route(router, deps)
    _get_route(router, deps)
    _update_route(router, deps, signed)
    _cancel_route(router, deps, signed)
    return router


def _submit_route(router: APIRouter, deps: IntakeDeps, signed_dep: Any) -> None:
    async def submit_notice(
        principal: Submitter,
        *,
        signed: SignedRequest | None = signed_dep,
        body: NoticeSubmission,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> NoticeView | RestrictedNoticeView:
        # Gathered once: scrubbed from the log while the use case runs, and its input.
        detail = restricted_detail(body, principal)
        result = await _in_unit_of_work(
            deps,
            lambda uow: notices.submit_notice(
                uow,
                deps=deps,
                principal=principal,
                submission=body,
                idempotency_key=idempotency_key,
                signed=signed,
                now=deps.clock(),
                detail=detail,
            ),
            restricted=detail.values(),
            # A plain submission writes one statement; with a key or signature it locks
            # first (notices/submission.py), so its writes still commit together.
            lone_write_commits=True,
        )
        _mark(response, result, created=True)
        return notice_view(result)

    # Declared as `@router.post` would; a plain submission (no key, no signature) skips
    # FastAPI's per-request dependency solving (plain_submission.py), everything else is
    # answered as before.
    router.add_api_route(
        "",
        submit_notice,
        methods=["POST"],
        status_code=201,
        summary="Record a new notice (field office); a retry answers 200 with the same notice",
        response_model=NoticeView,
        responses={
            200: {
                "description": "Same reference (or Idempotency-Key) and content: already recorded"
            },
            409: {"description": "The reference or Idempotency-Key was used for other content"},
            **_PROBLEMS,
        },
        # Where every submission must be signed, none is plain: FastAPI answers them all.
        route_class_override=APIRoute if deps.signatures.required else PlainSubmissionRoute,
    )


def _list_route(router: APIRouter, deps: IntakeDeps) -> None:
    @router.get(
        "",
        summary="List notices, newest first (field offices see their own)",
        response_model=NoticePage,
        responses={k: v for k, v in _PROBLEMS.items() if k in (400, 401, 403, 422)},
    )
    async def list_notices(
        principal: Reader,
        status: Annotated[Status | None, Query(description="Actual, Exercise or Test")] = None,
        operation_type: Annotated[OperationType | None, Query()] = None,
        state: Annotated[NoticeState | None, Query()] = None,
        window_from: Annotated[
            UtcDatetime | None, Query(description="Only windows ending at or after this time")
        ] = None,
        window_to: Annotated[
            UtcDatetime | None, Query(description="Only windows starting at or before this time")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        cursor: Annotated[
            str | None, Query(max_length=300, description="`next_cursor` of the previous page")
        ] = None,
    ) -> NoticePage:
        if cursor is not None and offset:
            raise bad_request("Page with `cursor` or with `offset`, not both.")
        filters = NoticeFilters(
            status=status,
            operation_type=operation_type,
            state=state,
            window_from=window_from,
            window_to=window_to,
        )
        page = await _in_unit_of_work(
            deps,
            lambda uow: notices.list_notices(
                uow,
                deps=deps,
                principal=principal,
                filters=filters,
                limit=limit,
                offset=offset,
                cursor=cursor,
            ),
        )
        items = [notice_summary(notice) for notice in page.notices]
        return NoticePage(items=items, limit=limit, offset=offset, next_cursor=page.next_cursor)


def _get_route(router: APIRouter, deps: IntakeDeps) -> None:
    @router.get(
        "/{notice_id}",
        summary="One notice with its version history; restricted detail for contact (audited)",
        response_model=NoticeView | RestrictedNoticeView,
        responses={404: {"description": "No such notice visible to the caller"}, **_READ_PROBLEMS},
    )
    async def get_notice(
        notice_id: uuid.UUID, principal: Reader
    ) -> NoticeView | RestrictedNoticeView:
        result = await _in_unit_of_work(
            deps,
            lambda uow: notices.read_notice(
                uow, deps=deps, principal=principal, notice_id=str(notice_id), now=deps.clock()
            ),
        )
        with scrubbed(result.detail.values() if result.detail else ()):
            return notice_view(result)


def _update_route(router: APIRouter, deps: IntakeDeps, signed_dep: Any) -> None:
    @router.post(
        "/{notice_id}/update",
        summary="Record the next version of a notice (CAP Update; full content)",
        response_model=NoticeView,
        responses={
            404: {"description": "No such notice of this field office"},
            409: {"description": "Cancelled or expired, version mismatch, or key reused"},
            **_PROBLEMS,
        },
    )
    async def update_notice(
        notice_id: uuid.UUID,
        principal: Updater,
        *,
        signed: SignedRequest | None = signed_dep,
        body: NoticeRevision,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> NoticeView | RestrictedNoticeView:
        result = await _in_unit_of_work(
            deps,
            lambda uow: notices.revise_notice(
                uow,
                deps=deps,
                principal=principal,
                notice_id=str(notice_id),
                revision=body,
                idempotency_key=idempotency_key,
                signed=signed,
                now=deps.clock(),
            ),
            restricted=restricted_detail(body, principal).values(),
        )
        _mark(response, result, created=False)
        return notice_view(result)


def _cancel_route(router: APIRouter, deps: IntakeDeps, signed_dep: Any) -> None:
    @router.post(
        "/{notice_id}/cancel",
        summary="Cancel a notice (CAP Cancel); its last version",
        response_model=NoticeView,
        responses={
            404: {"description": "No such notice of this field office"},
            409: {"description": "Already cancelled otherwise, expired, or version mismatch"},
            **_PROBLEMS,
        },
    )
    async def cancel_notice(
        notice_id: uuid.UUID,
        principal: Canceller,
        *,
        signed: SignedRequest | None = signed_dep,
        body: NoticeCancellation,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> NoticeView | RestrictedNoticeView:
        result = await _in_unit_of_work(
            deps,
            lambda uow: notices.cancel_notice(
                uow,
                deps=deps,
                principal=principal,
                notice_id=str(notice_id),
                cancellation=body,
                idempotency_key=idempotency_key,
                signed=signed,
                now=deps.clock(),
            ),
        )
        _mark(response, result, created=False)
        return notice_view(result)
