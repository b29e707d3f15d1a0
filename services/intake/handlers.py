"""The edges of intake: the HTTP API and the expiry sweeper.

Each route checks the caller's role, parses its contract, calls one use case and
presents the result. Object-level checks (a field office sees only its own notices)
and every business rule live in the use cases and the domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from starlette.responses import Response as StarletteResponse

from schemas.base import Status
from schemas.notices import OperationType
from services.common.auth import Principal, Role, require_roles
from services.common.cloudevents import current_correlation_id
from services.common.logging import get_logger
from services.common.problems import (
    Problem,
    bad_request,
    is_database_unavailable,
    not_found,
    problem_response,
    problem_type,
)
from services.common.runtime import Worker
from services.common.signing import (
    SIGNATURE_HEADER,
    SignatureError,
    signature_fingerprint,
    verify_signature,
)
from services.intake import service
from services.intake.config import IntakeSettings
from services.intake.domain import (
    IntakeConflict,
    IntakeNotFound,
    NoticeState,
    SignatureReplayed,
)
from services.intake.models import (
    IDEMPOTENCY_KEY_PATTERN,
    NoticeCancellation,
    NoticePage,
    NoticeRevision,
    NoticeSubmission,
    NoticeView,
    RestrictedNoticeView,
    UtcDatetime,
)
from services.intake.presenters import notice_summary, notice_view
from services.intake.repository import InvalidCursor, NoticeFilters
from services.intake.service import IntakeContext, SignedRequest

__all__ = [
    "REPLAYED_HEADER",
    "SignatureCheck",
    "install_error_handlers",
    "router",
    "sweeper",
]

log = get_logger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
MAX_PAGE = 200

router = APIRouter(prefix="/v1/notices", tags=["notices"])


# --- dependencies ------------------------------------------------------------------


def _context(request: Request) -> IntakeContext:
    context: IntakeContext = request.app.state.intake
    return context


ContextDep = Annotated[IntakeContext, Depends(_context)]
Submitter = Annotated[Principal, Depends(require_roles(Role.FIELD_OFFICE))]
Reader = Annotated[Principal, Depends(require_roles(Role.FIELD_OFFICE, Role.CONTACT, Role.OPS))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN.pattern,
        description="Repeat a request safely: the same key and content answer 200 once done.",
    ),
]


def _signature_problem(reason: str, detail: str) -> Problem:
    return Problem(
        401,
        "Invalid request signature",
        detail,
        type=problem_type("invalid-signature"),
        extensions={"reason": reason},
        headers={"WWW-Authenticate": f'{SIGNATURE_HEADER} realm="aviso"'},
    )


_SIGNATURE_DETAIL = {
    "missing": f"This service requires an {SIGNATURE_HEADER} header on every submission.",
    "malformed": f"The {SIGNATURE_HEADER} header must read t=<unix time>,v1=<hex HMAC-SHA256>.",
    "stale": "The signature is too old; sign the request again.",
    "future": "The signature's timestamp lies in the future; check the sender's clock.",
    "mismatch": "The signature does not match the body under any active secret.",
    "unverifiable": "This service has no signing secrets configured to check the signature.",
    "replayed": "This signed request was already accepted once; sign each request anew.",
}


@dataclass(frozen=True)
class SignatureCheck:
    """Verifies `Aviso-Signature` on submissions: when present, or always when required."""

    secrets: tuple[bytes, ...]
    required: bool
    tolerance_s: int
    future_skew_s: int

    @classmethod
    def from_settings(cls, settings: IntakeSettings) -> SignatureCheck:
        """The check the settings describe."""
        return cls(
            secrets=tuple(
                s.get_secret_value().encode("utf-8") for s in settings.intake_signing_secrets
            ),
            required=settings.intake_require_signature,
            tolerance_s=settings.intake_signature_tolerance_s,
            future_skew_s=settings.intake_signature_future_skew_s,
        )

    def verify(self, header: str | None, body: bytes, *, now: int) -> SignedRequest | None:
        """The verified request, None when unsigned and allowed; raises a 401 problem."""
        if header is None:
            if self.required:
                raise _signature_problem("missing", _SIGNATURE_DETAIL["missing"])
            return None
        if not self.secrets:
            raise _signature_problem("unverifiable", _SIGNATURE_DETAIL["unverifiable"])
        try:
            signed_at = verify_signature(
                header,
                body,
                self.secrets,
                now=now,
                tolerance_s=self.tolerance_s,
                future_skew_s=self.future_skew_s,
            )
        except SignatureError as exc:
            raise _signature_problem(exc.reason, _SIGNATURE_DETAIL[exc.reason]) from None
        return SignedRequest(fingerprint=signature_fingerprint(header, body), signed_at=signed_at)


async def _signed(request: Request) -> SignedRequest | None:
    check: SignatureCheck = request.app.state.intake_signatures
    header = request.headers.get(SIGNATURE_HEADER)
    body = await request.body() if header is not None else b""
    return check.verify(header, body, now=int(time.time()))


Signed = Annotated[SignedRequest | None, Depends(_signed)]


def _now() -> datetime:
    return datetime.now(UTC)


def _mark(response: Response, result: service.NoticeResult, *, created: bool) -> None:
    if result.replayed:
        response.status_code = 200
        response.headers[REPLAYED_HEADER] = "true"
    elif created:
        response.status_code = 201
        response.headers["Location"] = f"/v1/notices/{result.notice.id}"


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request (invalid JSON or UTF-8, bad cursor)"},
    401: {"description": "No valid token, or an invalid request signature"},
    403: {"description": "The caller's role may not do this"},
    413: {"description": "Body larger than the configured limit"},
    415: {"description": "Body is not application/json"},
    422: {"description": "Body does not match the schema"},
}


# --- routes ---------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    summary="Record a new notice (field office); a retry answers 200 with the same notice",
    response_model=NoticeView,
    responses={
        200: {"description": "Same reference (or Idempotency-Key) and content: already recorded"},
        409: {"description": "The reference or Idempotency-Key was used for other content"},
        **_PROBLEMS,
    },
)
async def submit_notice(
    principal: Submitter,
    signed: Signed,
    body: NoticeSubmission,
    response: Response,
    context: ContextDep,
    idempotency_key: IdempotencyKey = None,
) -> NoticeView | RestrictedNoticeView:
    result = await service.submit_notice(
        context,
        principal=principal,
        submission=body,
        idempotency_key=idempotency_key,
        signed=signed,
        now=_now(),
    )
    _mark(response, result, created=True)
    return notice_view(result)


@router.get(
    "",
    summary="List notices, newest first (field offices see their own)",
    response_model=NoticePage,
    responses={k: v for k, v in _PROBLEMS.items() if k in (400, 401, 403, 422)},
)
async def list_notices(
    principal: Reader,
    context: ContextDep,
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
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    cursor: Annotated[
        str | None, Query(max_length=300, description="`next_cursor` of the previous page")
    ] = None,
) -> NoticePage:
    if cursor is not None and offset:
        raise bad_request("Page with `cursor` or with `offset`, not both.")
    page = await service.list_notices(
        context,
        principal=principal,
        filters=NoticeFilters(
            status=status,
            operation_type=operation_type,
            state=state,
            window_from=window_from,
            window_to=window_to,
        ),
        limit=limit,
        offset=offset,
        cursor=cursor,
    )
    return NoticePage(
        items=[notice_summary(notice) for notice in page.notices],
        limit=limit,
        offset=offset,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/{notice_id}",
    summary="One notice with its version history; restricted detail for contact (audited)",
    response_model=NoticeView | RestrictedNoticeView,
    responses={
        404: {"description": "No such notice visible to the caller"},
        **{k: v for k, v in _PROBLEMS.items() if k in (401, 403, 422)},
    },
)
async def get_notice(
    notice_id: uuid.UUID, principal: Reader, context: ContextDep
) -> NoticeView | RestrictedNoticeView:
    result = await service.read_notice(
        context, principal=principal, notice_id=str(notice_id), now=_now()
    )
    with service.scrubbed(result.detail.values() if result.detail else ()):
        return notice_view(result)


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
    principal: Submitter,
    signed: Signed,
    body: NoticeRevision,
    response: Response,
    context: ContextDep,
    idempotency_key: IdempotencyKey = None,
) -> NoticeView | RestrictedNoticeView:
    result = await service.revise_notice(
        context,
        principal=principal,
        notice_id=str(notice_id),
        revision=body,
        idempotency_key=idempotency_key,
        signed=signed,
        now=_now(),
    )
    _mark(response, result, created=False)
    return notice_view(result)


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
    principal: Submitter,
    signed: Signed,
    body: NoticeCancellation,
    response: Response,
    context: ContextDep,
    idempotency_key: IdempotencyKey = None,
) -> NoticeView | RestrictedNoticeView:
    result = await service.cancel_notice(
        context,
        principal=principal,
        notice_id=str(notice_id),
        cancellation=body,
        idempotency_key=idempotency_key,
        signed=signed,
        now=_now(),
    )
    _mark(response, result, created=False)
    return notice_view(result)


# --- errors ----------------------------------------------------------------------------


def _respond(request: Request, problem: Problem) -> StarletteResponse:
    return problem_response(
        problem, instance=request.url.path, correlation_id=current_correlation_id.get()
    )


async def _not_found(request: Request, exc: Exception) -> StarletteResponse:
    return _respond(request, not_found("No notice with this id is visible to you."))


async def _conflict(request: Request, exc: Exception) -> StarletteResponse:
    assert isinstance(exc, IntakeConflict)
    # The stable code is the problem type, so clients can branch on it.
    problem = Problem(
        409, "Conflict", exc.detail, type=problem_type(exc.code), extensions=exc.extensions
    )
    return _respond(request, problem)


async def _replayed(request: Request, exc: Exception) -> StarletteResponse:
    return _respond(request, _signature_problem("replayed", _SIGNATURE_DETAIL["replayed"]))


async def _bad_cursor(request: Request, exc: Exception) -> StarletteResponse:
    return _respond(request, bad_request("The cursor is not one this service issued."))


def install_error_handlers(app: FastAPI) -> None:
    """Render intake's domain errors as RFC 9457 problems."""
    app.add_exception_handler(IntakeNotFound, _not_found)
    app.add_exception_handler(IntakeConflict, _conflict)
    app.add_exception_handler(SignatureReplayed, _replayed)
    app.add_exception_handler(InvalidCursor, _bad_cursor)


# --- background -------------------------------------------------------------------------


def sweeper(context: IntakeContext, *, interval_s: float) -> Worker:
    """A worker that expires, purges and prunes every `interval_s` until stopped."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report = await service.sweep(context, now=_now())
                if report.expired or report.purged:
                    log.info(
                        "intake.sweep_done",
                        expired=report.expired,
                        purged=report.purged,
                        pruned=report.pruned,
                    )
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise  # a bug: the runtime logs it once and restarts the worker
                # An outage is not a bug: one line, then try again next round.
                log.warning("intake.sweep_skipped", error_type=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    return run
