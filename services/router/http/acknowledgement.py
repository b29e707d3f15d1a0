"""Acknowledging: `POST /v1/alerts/{id}/ack` and the one-click link pages at `/ack`.

`GET /ack?token=` shows a small confirmation page (opening it never acknowledges: mail
scanners and link previews open links too) and `POST /ack` acknowledges.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from schemas.alerts import AckMethod
from services.common.auth import Principal
from services.common.problems import (
    Problem,
    bad_request,
    conflict,
    forbidden,
    not_found,
    payload_too_large,
    problem_response,
    problem_type,
)
from services.router import acknowledgement
from services.router.acknowledgement import AckResult
from services.router.deps import RouterDeps
from services.router.errors import (
    AlertClosed,
    AlertNotFound,
    LinkRejected,
    NotARecipient,
    StaleVersion,
    UnknownVersion,
)
from services.router.messages import format_window, render_page
from services.router.permissions import Action, allowed

__all__ = ["AckRequest", "AckView", "ack_link_router", "add_ack_route"]

_LINK_FORM_MAX_BYTES = 16 * 1024
_LINK_FORM_MAX_FIELDS = 10  # the form has two; a few more are tolerated, not thousands
_contacts = allowed(Action.ACKNOWLEDGE)
_REFUSALS = (NotARecipient, StaleVersion, UnknownVersion, AlertClosed)


class AckRequest(BaseModel):
    """Acknowledge the notice version you read."""

    model_config = ConfigDict(extra="forbid")

    notice_version: int = Field(ge=1, description="The version you read; a stale one gets 409.")
    comment: str | None = Field(default=None, max_length=2000)


class AckView(BaseModel):
    model_config = ConfigDict(frozen=True)

    alert_id: uuid.UUID
    state: str
    notice_version: int
    acknowledged_version: int | None
    acknowledged_by: uuid.UUID | None
    acknowledged_at: datetime | None
    method: str | None
    already_acknowledged: bool


def _ack_view(result: AckResult) -> AckView:
    alert = result.alert
    return AckView(
        alert_id=alert.id,
        state=alert.state,
        notice_version=alert.notice_version,
        acknowledged_version=alert.acknowledged_version,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=alert.acknowledged_at,
        method=alert.ack_method,
        already_acknowledged=result.already,
    )


def _ack_problem(
    deps: RouterDeps,
    exc: AlertNotFound | NotARecipient | StaleVersion | UnknownVersion | AlertClosed,
) -> Problem:
    """The problem for a refused acknowledgement (API and one-click link alike)."""
    match exc:
        case AlertNotFound():
            return not_found("No alert with this id.")
        case NotARecipient():
            return forbidden("Only people this alert reaches may acknowledge it.")
        case StaleVersion():
            return Problem(
                409,
                "Notice version is stale",
                f"The notice was updated to version {exc.current_version}. Read it again, then "
                f"acknowledge version {exc.current_version}.",
                type=problem_type("stale-notice-version"),
                extensions={
                    "current_version": exc.current_version,
                    # For a person: the console's alert page when there is a console.
                    "notice_url": deps.reading_url(alert_id=exc.alert_id, notice_id=exc.notice_id),
                },
            )
        case UnknownVersion():
            return conflict(
                f"Router knows the notice up to version {exc.current_version} only.",
                current_version=exc.current_version,
            )
        case AlertClosed():
            return Problem(
                409,
                "Alert resolved",
                "The alert was resolved (the notice was cancelled or its window ended); "
                "there is nothing left to acknowledge.",
                type=problem_type("alert-resolved"),
                extensions={"resolution": exc.resolution},
            )


def _person_of(principal: Principal) -> uuid.UUID:
    try:
        return uuid.UUID(principal.subject)
    except ValueError:
        raise forbidden(
            "This contact token is not linked to a directory person; issue it with "
            "--subject <person id>."
        ) from None


async def _acknowledge(
    deps: RouterDeps,
    *,
    alert_id: uuid.UUID,
    person_id: uuid.UUID,
    notice_version: int,
    method: AckMethod,
    comment: str | None,
) -> AckResult:
    async with deps.unit_of_work() as uow:
        result = await acknowledgement.acknowledge(
            uow,
            deps=deps,
            alert_id=alert_id,
            person_id=person_id,
            notice_version=notice_version,
            method=method,
            comment=comment,
        )
        await uow.commit()
    return result


def add_ack_route(router: APIRouter, deps: RouterDeps) -> None:
    """`POST /v1/alerts/{id}/ack` on the alerts router."""

    @router.post(
        "/{alert_id}/ack",
        summary="Acknowledge the notice version you read (twice is harmless)",
        responses={403: {}, 404: {}, 409: {"description": "Stale version: re-read the notice"}},
    )
    async def acknowledge(
        alert_id: uuid.UUID,
        body: AckRequest,
        principal: Annotated[Principal, Depends(_contacts)],
    ) -> AckView:
        try:
            result = await _acknowledge(
                deps,
                alert_id=alert_id,
                person_id=_person_of(principal),
                notice_version=body.notice_version,
                method="api",
                comment=body.comment,
            )
        except (AlertNotFound, *_REFUSALS) as exc:
            raise _ack_problem(deps, exc) from None
        return _ack_view(result)


# --- one-click acknowledgement link -------------------------------------------------------


def _wants_html(request: Request) -> bool:
    # Only a client that names HTML gets a page (browsers do); `*/*` or no Accept at all is
    # an API client or a script, which gets problem+json like everywhere else.
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept or "application/xhtml+xml" in accept


def _link_problem(request: Request, problem: Problem, *, drill: bool = False) -> Response:
    if _wants_html(request):
        page = render_page(
            "link_problem.html.j2",
            title=problem.title,
            detail=problem.detail or "",
            notice_url=problem.extensions.get("notice_url"),
            drill=drill,
        )
        return HTMLResponse(page, status_code=problem.status)
    return problem_response(problem, instance=request.url.path)


def _rejected(reason: str) -> Problem:
    if reason == "expired":
        return Problem(
            410,
            "Link expired",
            "This acknowledgement link has expired. Use the link in the newest message, or "
            "acknowledge through the API.",
            type=problem_type("ack-link-expired"),
        )
    return Problem(
        403,
        "Link not valid",
        "This acknowledgement link is not valid. Use the link exactly as it was sent.",
        type=problem_type("ack-link-invalid"),
    )


async def _read_form(request: Request) -> dict[str, str]:
    """A small urlencoded (or JSON) body; /ack is outside the JSON-only /v1 body guard."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > _LINK_FORM_MAX_BYTES:
        raise payload_too_large(max_bytes=_LINK_FORM_MAX_BYTES)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _LINK_FORM_MAX_BYTES:
            raise payload_too_large(max_bytes=_LINK_FORM_MAX_BYTES)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("The body is not UTF-8.") from None
    if content_type == "application/json":
        try:
            data = json.loads(text or "{}")
        except (ValueError, RecursionError):  # RecursionError: nested a thousand deep
            raise bad_request("The request body is not valid JSON.") from None
        if not isinstance(data, dict) or len(data) > _LINK_FORM_MAX_FIELDS:
            raise bad_request("Send an object with `token` (and optionally `comment`).")
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
    try:
        fields = parse_qs(text, max_num_fields=_LINK_FORM_MAX_FIELDS)
    except ValueError:  # more fields than the form has
        raise bad_request("Send the form fields `token` and optionally `comment`.") from None
    return {k: v[0] for k, v in fields.items() if v}


async def _confirm_page(deps: RouterDeps, request: Request, token: str) -> Response:
    try:
        async with deps.unit_of_work() as uow:
            link = await acknowledgement.link_page(uow, deps=deps, token=token)
    except LinkRejected as exc:
        return _link_problem(request, _rejected(exc.reason))
    alert = link.alert
    match link.refusal:
        case AlertClosed():
            return _link_problem(request, _ack_problem(deps, link.refusal))
        case StaleVersion():
            return _link_problem(request, _ack_problem(deps, link.refusal), drill=alert.drill)
        case None:
            pass
    page = render_page(
        "ack_confirm.html.j2",
        drill=alert.drill,
        content=alert.content,
        window=format_window(alert.content.window_start, alert.content.window_end, deps.timezone),
        urgency=alert.urgency,
        notice_version=link.claims.notice_version,
        notice_url=deps.notice_url(alert.notice_id),
        console_url=deps.alert_page_url(alert.id),
        already=link.already,
        action="/ack",
        token=token,
    )
    # The page holds the token in a form: keep it out of caches and referrers.
    return HTMLResponse(
        page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


async def _acknowledge_by_link(deps: RouterDeps, request: Request) -> Response:
    form = await _read_form(request)
    token = form.get("token", "")
    comment = (form.get("comment") or "").strip()[:2000] or None
    try:
        claims = acknowledgement.read_link(deps, token)
        result = await _acknowledge(
            deps,
            alert_id=claims.alert_id,
            person_id=claims.person_id,
            notice_version=claims.notice_version,
            method="link",
            comment=comment,
        )
    except LinkRejected as exc:
        return _link_problem(request, _rejected(exc.reason))
    except AlertNotFound:
        return _link_problem(request, _rejected("mismatch"))
    except _REFUSALS as exc:
        return _link_problem(request, _ack_problem(deps, exc))
    if _wants_html(request):
        page = render_page(
            "ack_done.html.j2",
            drill=result.alert.drill,
            already=result.already,
            alert_id=result.alert.id,
            notice_version=claims.notice_version,
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})
    return JSONResponse(_ack_view(result).model_dump(mode="json"))


def ack_link_router(deps: RouterDeps) -> APIRouter:
    """`GET /ack?token=` (confirmation page) and `POST /ack` (acknowledge)."""
    router = APIRouter(tags=["acknowledgement link"])

    @router.get(
        "/ack",
        summary="Confirmation page of a one-click link (does not acknowledge)",
        response_class=HTMLResponse,
        responses={403: {}, 409: {}, 410: {}},
    )
    async def confirm_page(
        request: Request, token: Annotated[str, Query(max_length=4096)]
    ) -> Response:
        return await _confirm_page(deps, request, token)

    @router.post(
        "/ack",
        summary="Acknowledge through a one-click link (form field `token`, optional `comment`)",
        responses={403: {}, 409: {}, 410: {}},
    )
    async def acknowledge_by_link(request: Request) -> Response:
        return await _acknowledge_by_link(deps, request)

    return router
