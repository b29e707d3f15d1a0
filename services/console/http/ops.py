"""Ops: the board of open alerts (state, age, step) and service health. Admin: the directory."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.console.api import Service
from services.console.deps import ConsoleDeps
from services.console.http.pages import Viewer, age_minutes, render, viewer

__all__ = ["ops_router"]

Me = Annotated[Viewer, Depends(viewer)]
_SERVICES: tuple[Service, ...] = ("intake", "router", "rumor_control")


def ops_router(deps: ConsoleDeps) -> APIRouter:
    """The ops board and the directory page."""
    router = APIRouter(tags=["ops"])

    @router.get("/ops", include_in_schema=False)
    async def board(request: Request, me: Me) -> Response:
        listed = await deps.api.call(
            "GET", "router", "/v1/alerts", token=me.token, params={"state": "open", "limit": 200}
        )
        now = deps.clock()
        alerts: list[dict[str, Any]] = listed["items"]
        for alert in alerts:
            alert["age_min"] = age_minutes(alert["triggered_at"], now)
        health = await asyncio.gather(*(deps.api.ready(s) for s in _SERVICES))
        return render(
            request, "ops.html.j2", alerts=alerts, health=dict(zip(_SERVICES, health, strict=True))
        )

    @router.get("/admin/directory", include_in_schema=False)
    async def directory(request: Request, me: Me) -> Response:
        found = await deps.api.call("GET", "router", "/v1/directory", token=me.token)
        return render(request, "directory.html.j2", d=found)

    return router
