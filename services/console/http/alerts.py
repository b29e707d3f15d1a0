"""The SPOC's and contacts' pages, phone first: inbox, alert page, acknowledgement, notice.

`/alerts/{alert_id}` and `/notices/{notice_id}` are stable URLs that notifications may
link to. The restricted detail is read from intake with the person's own token, so
intake decides (contact only) and audits every read; the console keeps none of it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.common.logging import get_logger
from services.console.api import ApiProblem
from services.console.deps import ConsoleDeps
from services.console.http.pages import (
    Viewer,
    age_minutes,
    check_csrf,
    field,
    redirect,
    render,
    viewer,
)
from services.console.permissions import may_acknowledge

__all__ = ["alerts_router"]

log = get_logger(__name__)
Me = Annotated[Viewer, Depends(viewer)]


def alerts_router(deps: ConsoleDeps) -> APIRouter:
    """Inbox, alert page, acknowledgement, notice page."""
    router = APIRouter(tags=["alerts"])

    async def inbox_items(me: Viewer) -> list[dict[str, Any]]:
        listed = await deps.api.call(
            "GET", "router", "/v1/alerts", token=me.token, params={"limit": 50}
        )
        now = deps.clock()
        items: list[dict[str, Any]] = listed["items"]
        for item in items:
            item["age_min"] = age_minutes(item["triggered_at"], now)
        # Open alerts first (they need someone), newest first within each group.
        return sorted(items, key=lambda a: (not a["needs_acknowledgement"], a["age_min"]))

    @router.get("/alerts", include_in_schema=False)
    async def inbox(request: Request, me: Me) -> Response:
        return render(request, "alerts.html.j2", alerts=await inbox_items(me))

    @router.get("/alerts/inbox", include_in_schema=False)
    async def inbox_fragment(request: Request, me: Me) -> Response:
        # The list alone: the page's script swaps it in every few seconds (live updates).
        return render(request, "_alert_list.html.j2", alerts=await inbox_items(me))

    @router.get("/alerts/{alert_id}", include_in_schema=False)
    async def alert_page(request: Request, alert_id: uuid.UUID, me: Me) -> Response:
        return await _alert_page(request, me, alert_id, message=None)

    async def _alert_page(
        request: Request, me: Viewer, alert_id: uuid.UUID, *, message: str | None, status: int = 200
    ) -> Response:
        alert = await deps.api.call("GET", "router", f"/v1/alerts/{alert_id}", token=me.token)
        timeline = await deps.api.call(
            "GET", "router", f"/v1/alerts/{alert_id}/timeline", token=me.token
        )
        notice, restricted_refusal = await _notice_for(me, alert["notice_id"])
        return render(
            request,
            "alert.html.j2",
            status_code=status,
            alert=alert,
            timeline=timeline["entries"],
            notice=notice,
            restricted_refusal=restricted_refusal,
            can_ack=may_acknowledge(me.session.role) and alert["needs_acknowledgement"],
            message=message,
        )

    async def _notice_for(me: Viewer, notice_id: str) -> tuple[dict[str, Any] | None, int | None]:
        try:
            notice = await deps.api.call(
                "GET", "intake", f"/v1/notices/{notice_id}", token=me.token
            )
        except ApiProblem as problem:
            if problem.status in (403, 404):
                return None, problem.status
            raise
        return notice, None

    @router.post("/alerts/{alert_id}/ack", include_in_schema=False)
    async def acknowledge(request: Request, alert_id: uuid.UUID, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        comment = field(form, "comment") or None
        try:
            version = int(field(form, "notice_version", "0"))
        except ValueError:
            version = 0
        try:
            await deps.api.call(
                "POST",
                "router",
                f"/v1/alerts/{alert_id}/ack",
                token=me.token,
                json={"notice_version": max(version, 1), "comment": comment},
            )
        except ApiProblem as problem:
            if problem.status in (403, 409, 422):
                return await _alert_page(
                    request, me, alert_id, message=problem.detail or problem.title, status=409
                )
            raise
        log.info("console.alert_acknowledged", alert_id=str(alert_id), user_id=me.session.user_id)
        return redirect(f"/alerts/{alert_id}?acknowledged=1")

    @router.get("/notices/{notice_id}", include_in_schema=False)
    async def notice_page(request: Request, notice_id: uuid.UUID, me: Me) -> Response:
        notice = await deps.api.call("GET", "intake", f"/v1/notices/{notice_id}", token=me.token)
        return render(request, "notice.html.j2", notice=notice)

    return router
