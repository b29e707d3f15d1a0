"""Ops: the board of open alerts (state, age, step, delivery failures), escalations due
(each open alert's next step and when it fires), and service health.

Everything comes from router's `GET /v1/alerts` and each alert's timeline (where
`delivery_failed` entries record channels that gave up), read with the person's token.
No service has an HTTP API for the dead-letter topic yet, so the board points to
`aviso dlq list|replay` instead of showing it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.console.api import Service
from services.console.deps import ConsoleDeps
from services.console.http.pages import Viewer, age_minutes, render, viewer

__all__ = ["escalations_due", "next_step", "ops_router"]

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
        )
