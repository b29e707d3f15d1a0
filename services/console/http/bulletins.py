"""The vetters' pages: the queue of drafts and a bulletin's page (both languages side by
side, guardrail findings, sign-offs, edit per language, approve or reject; once published,
the read receipts per liaison and retraction). rumor_control decides every rule
(two-person rule, sign-offs, blocked drafts, who may retract); the page shows it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.console.api import ApiProblem
from services.console.deps import ConsoleDeps
from services.console.http.pages import Viewer, check_csrf, field, redirect, render, viewer
from services.console.i18n import LANGUAGES
from services.console.permissions import may_vet

__all__ = ["RETRACT_REASONS", "bulletins_router", "liaison_receipts"]

Me = Annotated[Viewer, Depends(viewer)]
SECTIONS = ("headline", "body", "sms", "radio")
_REASONS = ("inaccurate", "tone", "translation", "restricted_detail", "not_needed")
RETRACT_REASONS = ("inaccurate", "operation_cancelled", "restricted_detail", "superseded")
_PUBLISHED = ("published", "retracted")


def _sms_facts(text: str) -> dict[str, int | str]:
    # What the page can say without rumor_control's SMS module: length and the encoding a
    # phone would pick (GSM-7 for plain text, UCS-2 once a character falls outside it).
    gsm = set(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
        "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
    )
    encoding = "GSM-7" if all(ch in gsm for ch in text) else "UCS-2"
    single, multi = (160, 153) if encoding == "GSM-7" else (70, 67)
    length = len(text)
    segments = 1 if length <= single else -(-length // multi)
    return {"length": length, "encoding": encoding, "segments": segments}


def liaison_receipts(found: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per recipient: the versions sent, by which channels, and when they confirmed.

    `found` is rumor_control's `GET /v1/bulletins/{id}/deliveries`.
    """
    rows: dict[str, dict[str, Any]] = {}
    for d in found.get("deliveries", []):
        row = rows.setdefault(
            d["recipient_id"],
            {"name": d["recipient_name"] or d["recipient_id"], "sent": [], "seen": {}},
        )
        row["sent"].append(
            {"version": d["version"], "channel": d["channel"], "outcome": d["outcome"]}
        )
    for r in found.get("receipts", []):
        row = rows.setdefault(
            r["recipient_id"],
            {"name": r["recipient_name"] or r["recipient_id"], "sent": [], "seen": {}},
        )
        row["seen"][r["version"]] = r["first_seen_at"]
    return sorted(rows.values(), key=lambda row: str(row["name"]))


def _approver_names(bulletin: dict[str, Any]) -> dict[str, str]:
    """Person id -> name of whoever signed off, so the page names who approved a version."""
    return {str(s["by"]): s["name"] for s in bulletin.get("signoffs", [])}


async def _receipts(deps: ConsoleDeps, me: Viewer, bulletin: dict[str, Any]) -> list[Any] | None:
    if bulletin["state"] not in _PUBLISHED:
        return None
    path = f"/v1/bulletins/{bulletin['bulletin_id']}/deliveries"
    try:
        found = await deps.api.call("GET", "rumor_control", path, token=me.token)
    except ApiProblem as problem:
        if problem.status == 403:  # a liaison: rumor_control keeps receipts to vetters and ops
            return None
        raise
    return liaison_receipts(found)


async def bulletin_page(
    request: Request,
    deps: ConsoleDeps,
    me: Viewer,
    bulletin_id: uuid.UUID,
    *,
    message: str | None = None,
    status: int = 200,
) -> Response:
    """The bulletin as rumor_control shows this person, with receipts once published."""
    bulletin = await deps.api.call(
        "GET", "rumor_control", f"/v1/bulletins/{bulletin_id}", token=me.token
    )
    texts = bulletin.get("texts") or {}
    return render(
        request,
        "bulletin.html.j2",
        status_code=status,
        b=bulletin,
        texts=texts,
        sms={lang: _sms_facts(sections["sms"]) for lang, sections in texts.items()},
        languages=LANGUAGES,
        sections=SECTIONS,
        reasons=_REASONS,
        retract_reasons=RETRACT_REASONS,
        receipts=await _receipts(deps, me, bulletin),
        approvers=_approver_names(bulletin),
        can_vet=may_vet(me.session.role),
        mine=bulletin.get("author_name") == me.session.name,
        message=message,
    )


async def _act(
    request: Request,
    deps: ConsoleDeps,
    me: Viewer,
    bulletin_id: uuid.UUID,
    call: tuple[str, str, Any],
) -> Response:
    """Send one vetting action; a refusal shows on the bulletin's page with its reason."""
    method, path, body = call
    try:
        await deps.api.call(method, "rumor_control", path, token=me.token, json=body)
    except ApiProblem as problem:
        if problem.status in (403, 409, 422):
            text = problem.detail or problem.title
            return await bulletin_page(
                request, deps, me, bulletin_id, message=text, status=problem.status
            )
        raise
    return redirect(f"/bulletins/{bulletin_id}")


def bulletins_router(deps: ConsoleDeps) -> APIRouter:
    """The vetting queue, the bulletin page and its actions."""
    router = APIRouter(tags=["bulletins"])
    _queue_route(router, deps)
    _page_route(router, deps)
    _edit_route(router, deps)
    _signoff_route(router, deps)
    _approve_route(router, deps)
    _reject_route(router, deps)
    _retract_route(router, deps)
    return router


def _queue_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/bulletins", include_in_schema=False)
    async def queue(request: Request, me: Me) -> Response:
        listed: list[dict[str, Any]] = await deps.api.call(
            "GET", "rumor_control", "/v1/bulletins", token=me.token
        )
        drafts = [b for b in listed if b["version_state"] in ("drafted", "blocked")]
        others = [b for b in listed if b not in drafts]
        return render(request, "bulletins.html.j2", drafts=drafts, others=others)


def _page_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/bulletins/{bulletin_id}", include_in_schema=False)
    async def page(request: Request, bulletin_id: uuid.UUID, me: Me) -> Response:
        return await bulletin_page(request, deps, me, bulletin_id)


def _edit_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/bulletins/{bulletin_id}/edit/{language}", include_in_schema=False)
    async def edit(request: Request, bulletin_id: uuid.UUID, language: str, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        changes = {s: field(form, s) for s in SECTIONS if field(form, s)}
        path = f"/v1/bulletins/{bulletin_id}/texts/{language}"
        return await _act(request, deps, me, bulletin_id, ("PUT", path, changes))


def _signoff_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/bulletins/{bulletin_id}/signoff", include_in_schema=False)
    async def signoff(request: Request, bulletin_id: uuid.UUID, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        body = {"languages": [lang for lang in form.get("language", []) if lang in LANGUAGES]}
        path = f"/v1/bulletins/{bulletin_id}/signoff"
        return await _act(request, deps, me, bulletin_id, ("POST", path, body))


def _approve_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/bulletins/{bulletin_id}/approve", include_in_schema=False)
    async def approve(request: Request, bulletin_id: uuid.UUID, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        body = {"sign_off": [lang for lang in form.get("language", []) if lang in LANGUAGES]}
        path = f"/v1/bulletins/{bulletin_id}/approve"
        return await _act(request, deps, me, bulletin_id, ("POST", path, body))


def _reject_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/bulletins/{bulletin_id}/reject", include_in_schema=False)
    async def reject(request: Request, bulletin_id: uuid.UUID, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        body = {
            "reason_codes": [r for r in form.get("reason", []) if r in _REASONS],
            "comment": field(form, "comment") or None,
        }
        path = f"/v1/bulletins/{bulletin_id}/reject"
        return await _act(request, deps, me, bulletin_id, ("POST", path, body))


def _retract_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/bulletins/{bulletin_id}/retract", include_in_schema=False)
    async def retract(request: Request, bulletin_id: uuid.UUID, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        reason = field(form, "reason_code")
        body = {"reason_code": reason if reason in RETRACT_REASONS else RETRACT_REASONS[0]}
        path = f"/v1/bulletins/{bulletin_id}/retract"
        return await _act(request, deps, me, bulletin_id, ("POST", path, body))
