"""The SPOC's and contacts' pages, phone first: alert page, acknowledgement, notice.

`/alerts/{alert_id}` and `/notices/{notice_id}` are stable URLs that notifications may
link to. The restricted detail is read from intake with the person's own token, so
intake decides (contact only) and audits every read; the console keeps none of it.
The inbox (`/alerts`, live) is in inbox.py.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.common.logging import get_logger
from services.console.api import ApiProblem
from services.console.deps import ConsoleDeps
from services.console.http.pages import Viewer, check_csrf, field, redirect, render, viewer
from services.console.permissions import may_acknowledge

__all__ = ["alert_page", "alerts_router"]

log = get_logger(__name__)
Me = Annotated[Viewer, Depends(viewer)]


def alerts_router(deps: ConsoleDeps) -> APIRouter:
    """Alert page, acknowledgement, notice page."""
    router = APIRouter(tags=["alerts"])
    _alert_route(router, deps)
    _ack_route(router, deps)
    _notice_route(router, deps)
    return router


async def _notice_for(
    deps: ConsoleDeps, me: Viewer, notice_id: str
) -> tuple[dict[str, Any] | None, int | None]:
    """The notice as intake shows this person, or the status intake refused it with."""
    try:
        notice = await deps.api.call("GET", "intake", f"/v1/notices/{notice_id}", token=me.token)
    except ApiProblem as problem:
        if problem.status in (403, 404):
            return None, problem.status
        raise
    return notice, None


async def alert_page(
    request: Request,
    deps: ConsoleDeps,
    me: Viewer,
    alert_id: uuid.UUID,
    *,
    message: str | None = None,
    status: int = 200,
) -> Response:
    """The alert, its notice as this person may read it, and its timeline."""
    alert = await deps.api.call("GET", "router", f"/v1/alerts/{alert_id}", token=me.token)
    timeline = await deps.api.call(
        "GET", "router", f"/v1/alerts/{alert_id}/timeline", token=me.token
    )
    notice, restricted_refusal = await _notice_for(deps, me, alert["notice_id"])
    entries = timeline["entries"]
    return render(
        request,
        "alert.html.j2",
        status_code=status,
        alert=alert,
        timeline=entries,
        failures=[e for e in entries if e["kind"] == "delivery_failed"],
        notice=notice,
        restricted_refusal=restricted_refusal,
        can_ack=may_acknowledge(me.session.role) and alert["needs_acknowledgement"],
        message=message,
    )


def _alert_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/alerts/{alert_id}", include_in_schema=False)
    async def alert(request: Request, alert_id: uuid.UUID, me: Me) -> Response:
        return await alert_page(request, deps, me, alert_id)


def _ack_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/alerts/{alert_id}/ack", include_in_schema=False)
    async def acknowledge(request: Request, alert_id: uuid.UUID, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        try:
            version = int(field(form, "notice_version", "0"))
        except ValueError:
            version = 0
        body = {"notice_version": max(version, 1), "comment": field(form, "comment") or None}
        try:
            await deps.api.call(
                "POST", "router", f"/v1/alerts/{alert_id}/ack", token=me.token, json=body
            )
        except ApiProblem as problem:
            if problem.status in (403, 409, 422):
                text = problem.detail or problem.title
                return await alert_page(request, deps, me, alert_id, message=text, status=409)
            raise
        log.info("console.alert_acknowledged", alert_id=str(alert_id), user_id=me.session.user_id)
        return redirect(f"/alerts/{alert_id}?acknowledged=1")


def _notice_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/notices/{notice_id}", include_in_schema=False)
    async def notice(request: Request, notice_id: uuid.UUID, me: Me) -> Response:
        found = await deps.api.call("GET", "intake", f"/v1/notices/{notice_id}", token=me.token)
        return render(request, "notice.html.j2", notice=found)
