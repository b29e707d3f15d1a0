"""Ops: the board of open alerts (state, age, step, delivery failures), escalations due
(each open alert's next step and when it fires), and service health; the dead letters
with replay; the audit chain's verification.

The board comes from router's `GET /v1/alerts` and each alert's timeline (where
`delivery_failed` entries record channels that gave up), read with the person's token.
Dead letters are router's `/v1/ops/dead-letters`, the audit check intake's `/v1/ops/audit`
(both ops only). Each has a page of its own: reading the whole topic or walking the whole
chain takes longer than the board should.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.common.logging import get_logger
from services.console.api import ApiProblem, Service
from services.console.deps import ConsoleDeps
from services.console.http.pages import (
    Viewer,
    age_minutes,
    check_csrf,
    redirect,
    render,
    viewer,
)
from services.console.permissions import may_operate

__all__ = ["escalations_due", "next_step", "ops_router"]

log = get_logger(__name__)
Me = Annotated[Viewer, Depends(viewer)]
_SERVICES: tuple[Service, ...] = ("intake", "router", "rumor_control")
# Timelines read at once for the board: enough to be quick, few enough to spare router.
_TIMELINE_CONCURRENCY = 8


def next_step(alert: dict[str, Any]) -> dict[str, Any] | None:
    """The escalation step the alert moves to when its wait runs out (None: none left)."""
    steps = alert["snapshot"]["steps"]
    if not steps or alert.get("next_escalation_at") is None:
        return None
    following = alert["step"] + 1
    if following < len(steps):
        return {**steps[following], "round": alert["repeat"]}
    if alert["repeat"] < alert["snapshot"]["repeat"]:
        return {**steps[0], "round": alert["repeat"] + 1}
    return None


def escalations_due(alerts: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Open alerts with a next escalation, soonest first, with minutes left (< 0: overdue)."""
    due = []
    for alert in alerts:
        at = alert.get("next_escalation_at")
        if at is None or not alert["needs_acknowledgement"]:
            continue
        left = (datetime.fromisoformat(at) - now).total_seconds() / 60
        due.append({"alert": alert, "at": at, "minutes_left": int(left), "next": next_step(alert)})
    return sorted(due, key=lambda d: str(d["at"]))


async def _failures(deps: ConsoleDeps, me: Viewer, alerts: list[dict[str, Any]]) -> None:
    """Count each alert's `delivery_failed` timeline entries into `alert["failures"]`."""
    gate = asyncio.Semaphore(_TIMELINE_CONCURRENCY)

    async def count(alert: dict[str, Any]) -> None:
        async with gate:
            timeline = await deps.api.call(
                "GET", "router", f"/v1/alerts/{alert['id']}/timeline", token=me.token
            )
        alert["failures"] = [e for e in timeline["entries"] if e["kind"] == "delivery_failed"]

    await asyncio.gather(*(count(a) for a in alerts))


def ops_router(deps: ConsoleDeps) -> APIRouter:
    """The ops board."""
    router = APIRouter(tags=["ops"])
    _board_route(router, deps)
    _dead_letters_route(router, deps)
    _replay_route(router, deps)
    _audit_route(router, deps)
    return router


def _board_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/ops", include_in_schema=False)
    async def board(request: Request, me: Me) -> Response:
        listed = await deps.api.call(
            "GET", "router", "/v1/alerts", token=me.token, params={"state": "open", "limit": 200}
        )
        now = deps.clock()
        alerts: list[dict[str, Any]] = listed["items"]
        for alert in alerts:
            alert["age_min"] = age_minutes(alert["triggered_at"], now)
        await _failures(deps, me, alerts)
        health = await asyncio.gather(*(deps.api.ready(s) for s in _SERVICES))
        return render(
            request,
            "ops.html.j2",
            alerts=alerts,
            due=escalations_due(alerts, now),
            health=dict(zip(_SERVICES, health, strict=True)),
            can_operate=may_operate(me.session.role),
        )


async def _dead_letters_page(
    request: Request,
    deps: ConsoleDeps,
    me: Viewer,
    *,
    message: str | None = None,
    status: int = 200,
) -> Response:
    listed = await deps.api.call("GET", "router", "/v1/ops/dead-letters", token=me.token)
    return render(
        request,
        "dead_letters.html.j2",
        status_code=status,
        letters=listed["items"],
        replayed=request.query_params.get("replayed"),
        message=message,
    )


def _dead_letters_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/ops/dead-letters", include_in_schema=False)
    async def dead_letters(request: Request, me: Me) -> Response:
        return await _dead_letters_page(request, deps, me)


def _replay_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/ops/dead-letters/replay", include_in_schema=False)
    async def replay(request: Request, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        ids = [i for i in form.get("id", []) if i]
        if not ids:
            return await _dead_letters_page(request, deps, me, message="dlq.pick", status=422)
        try:
            done = await deps.api.call(
                "POST", "router", "/v1/ops/dead-letters/replay", token=me.token, json={"ids": ids}
            )
        except ApiProblem as problem:
            if problem.status in (404, 422):
                return await _dead_letters_page(request, deps, me, message="dlq.gone", status=409)
            raise
        log.info(
            "console.dead_letters_replayed", count=len(done["replayed"]), user_id=me.session.user_id
        )
        return redirect(f"/ops/dead-letters?replayed={len(done['replayed'])}")


def _audit_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/ops/audit", include_in_schema=False)
    async def audit(request: Request, me: Me) -> Response:
        result = await deps.api.call("GET", "intake", "/v1/ops/audit", token=me.token)
        return render(request, "audit.html.j2", result=result)
