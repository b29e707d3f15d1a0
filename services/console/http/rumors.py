"""Phone-line and outreach officers: record a rumor report in seconds (Spanish first), the
rumor ledger, and a rumor's page where vetters assess it.

rumor_control clusters reports into rumors (same place, close in time); the ledger groups
those rumors by place, so a vetter sees at a glance where talk concentrates, which rumors
still wait for an assessment, and what the notices suggest for each (never applied by
itself: the vetter decides).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.console.api import ApiProblem
from services.console.deps import ConsoleDeps
from services.console.http.pages import Viewer, check_csrf, field, redirect, render, viewer
from services.console.permissions import may_vet

__all__ = ["SOURCES", "ledger_clusters", "report_body", "rumors_router"]

Me = Annotated[Viewer, Depends(viewer)]
_ZONE = ZoneInfo("America/Chicago")

# The sources an officer picks from -> (rumor_control channel, organisation).
SOURCES: dict[str, tuple[str, str | None]] = {
    "phone_line": ("phone_line", None),
    "la_movida": ("radio", "La Movida"),
    "liaison": ("community_leader", None),
    "walk_in": ("walk_in", None),
}
ASSESSMENTS = ("Confirmed", "Not confirmed", "False", "Unable to verify")


def ledger_clusters(rumors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rumors grouped by place: places with rumors awaiting assessment first, then the most
    recently heard; within a place, open rumors first, newest first."""
    by_place: dict[str, list[dict[str, Any]]] = {}
    for rumor in rumors:
        by_place.setdefault(rumor.get("area_code") or rumor.get("area") or "", []).append(rumor)
    clusters: list[dict[str, Any]] = []
    for place, members in by_place.items():
        members.sort(key=lambda r: str(r["last_reported_at"]), reverse=True)
        members.sort(key=lambda r: r.get("assessment") is not None)
        clusters.append(
            {
                "place": place,
                "area": members[0].get("area"),
                "rumors": members,
                "reports": sum(int(r["report_count"]) for r in members),
                "open": sum(1 for r in members if r.get("assessment") is None),
                "last_reported_at": max(str(r["last_reported_at"]) for r in members),
            }
        )
    clusters.sort(key=lambda c: str(c["last_reported_at"]), reverse=True)
    clusters.sort(key=lambda c: c["open"] == 0)
    return clusters


def _observed_at(value: str) -> str | None:
    """The form's local date-time (department time zone) as an aware ISO string."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=_ZONE).isoformat()
    except ValueError:
        return None


def rumors_router(deps: ConsoleDeps) -> APIRouter:
    """Report form, ledger, rumor page and assessment."""
    router = APIRouter(tags=["rumors"])
    _report_form_route(router, deps)
    _report_route(router, deps)
    _ledger_route(router, deps)
    _rumor_route(router, deps)
    _assess_route(router, deps)
    return router


def _form_page(
    request: Request,
    deps: ConsoleDeps,
    *,
    filed: dict[str, Any] | None = None,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "report.html.j2",
        status_code=status,
        places=deps.places,
        sources=tuple(SOURCES),
        filed=filed,
        error=error,
        values=values or {"source": "phone_line", "language": "es"},
    )


def report_body(values: dict[str, str]) -> dict[str, Any]:
    """rumor_control's `POST /v1/rumors` body of the report form."""
    channel, organisation = SOURCES.get(values["source"], SOURCES["phone_line"])
    return {
        "claim": values["claim"],
        "place": values["place"],
        "channel": channel,
        "organisation": organisation,
        "language": values["language"] if values["language"] in ("es", "en") else None,
        "observed_at": _observed_at(values["observed"]),
    }


def _report_form_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/rumors/new", include_in_schema=False)
    async def report_form(request: Request, _me: Me) -> Response:
        return _form_page(request, deps)


def _report_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/rumors", include_in_schema=False)
    async def report(request: Request, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        values = {k: field(form, k) for k in ("claim", "place", "source", "language", "observed")}
        try:
            filed = await deps.api.call(
                "POST", "rumor_control", "/v1/rumors", token=me.token, json=report_body(values)
            )
        except ApiProblem as problem:
            if problem.status == 422:
                return _form_page(request, deps, error="report.invalid", values=values, status=422)
            raise
        return _form_page(request, deps, filed=filed)


def _ledger_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/rumors", include_in_schema=False)
    async def ledger(request: Request, me: Me) -> Response:
        rumors = await deps.api.call("GET", "rumor_control", "/v1/rumors", token=me.token)
        return render(request, "rumors.html.j2", rumors=rumors, clusters=ledger_clusters(rumors))


def _rumor_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/rumors/{rumor_id}", include_in_schema=False)
    async def rumor_page(request: Request, rumor_id: uuid.UUID, me: Me) -> Response:
        rumor = await deps.api.call(
            "GET", "rumor_control", f"/v1/rumors/{rumor_id}", token=me.token
        )
        return render(
            request,
            "rumor.html.j2",
            rumor=rumor,
            assessments=ASSESSMENTS,
            can_assess=may_vet(me.session.role),
        )


def _assess_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/rumors/{rumor_id}/assess", include_in_schema=False)
    async def assess(request: Request, rumor_id: uuid.UUID, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        body = {
            "assessment": field(form, "assessment"),
            "linked_notice_ids": [n for n in form.get("notice", []) if n],
        }
        assessed = await deps.api.call(
            "POST", "rumor_control", f"/v1/rumors/{rumor_id}/assess", token=me.token, json=body
        )
        return redirect(f"/bulletins/{assessed['bulletin_id']}")
