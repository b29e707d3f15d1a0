"""The vetters' pages: the queue of drafts and a draft's page (both languages side by side,
guardrail findings, sign-offs, edit per language, approve or reject). rumor_control
decides every rule (two-person rule, sign-offs, blocked drafts); the page shows it."""

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

__all__ = ["bulletins_router"]

Me = Annotated[Viewer, Depends(viewer)]
SECTIONS = ("headline", "body", "sms", "radio")
_REASONS = ("inaccurate", "tone", "translation", "restricted_detail", "not_needed")


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


def bulletins_router(deps: ConsoleDeps) -> APIRouter:
    """The vetting queue and the draft page."""
    router = APIRouter(tags=["bulletins"])

    @router.get("/bulletins", include_in_schema=False)
    async def queue(request: Request, me: Me) -> Response:
        listed: list[dict[str, Any]] = await deps.api.call(
            "GET", "rumor_control", "/v1/bulletins", token=me.token
        )
        drafts = [b for b in listed if b["version_state"] in ("drafted", "blocked")]
        others = [b for b in listed if b not in drafts]
        return render(request, "bulletins.html.j2", drafts=drafts, others=others)

    async def _page(
        request: Request,
        me: Viewer,
        bulletin_id: uuid.UUID,
        *,
        message: str | None = None,
        status: int = 200,
    ) -> Response:
        bulletin = await deps.api.call(
            "GET", "rumor_control", f"/v1/bulletins/{bulletin_id}", token=me.token
        )
        texts = bulletin.get("texts") or {}
        sms = {lang: _sms_facts(sections["sms"]) for lang, sections in texts.items()}
        return render(
            request,
            "bulletin.html.j2",
            status_code=status,
            b=bulletin,
            texts=texts,
            sms=sms,
            languages=LANGUAGES,
            sections=SECTIONS,
            reasons=_REASONS,
            can_vet=may_vet(me.session.role),
            mine=bulletin.get("author_name") == me.session.name,
            message=message,
        )

    @router.get("/bulletins/{bulletin_id}", include_in_schema=False)
    async def bulletin_page(request: Request, bulletin_id: uuid.UUID, me: Me) -> Response:
        return await _page(request, me, bulletin_id)

    async def act(
        request: Request, me: Viewer, bulletin_id: uuid.UUID, method: str, path: str, body: Any
    ) -> Response:
        try:
            await deps.api.call(method, "rumor_control", path, token=me.token, json=body)
        except ApiProblem as problem:
            if problem.status in (403, 409, 422):
                text = problem.detail or problem.title
                return await _page(request, me, bulletin_id, message=text, status=problem.status)
            raise
        return redirect(f"/bulletins/{bulletin_id}")

    @router.post("/bulletins/{bulletin_id}/edit/{language}", include_in_schema=False)
    async def edit(request: Request, bulletin_id: uuid.UUID, language: str, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        changes = {s: field(form, s) for s in SECTIONS if field(form, s)}
        path = f"/v1/bulletins/{bulletin_id}/texts/{language}"
        return await act(request, me, bulletin_id, "PUT", path, changes)

    @router.post("/bulletins/{bulletin_id}/signoff", include_in_schema=False)
    async def signoff(request: Request, bulletin_id: uuid.UUID, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        body = {"languages": [lang for lang in form.get("language", []) if lang in LANGUAGES]}
        path = f"/v1/bulletins/{bulletin_id}/signoff"
        return await act(request, me, bulletin_id, "POST", path, body)

    @router.post("/bulletins/{bulletin_id}/approve", include_in_schema=False)
    async def approve(request: Request, bulletin_id: uuid.UUID, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        body = {"sign_off": [lang for lang in form.get("language", []) if lang in LANGUAGES]}
        path = f"/v1/bulletins/{bulletin_id}/approve"
        return await act(request, me, bulletin_id, "POST", path, body)

    @router.post("/bulletins/{bulletin_id}/reject", include_in_schema=False)
    async def reject(request: Request, bulletin_id: uuid.UUID, me: Me) -> Response:
        form = await check_csrf(request, me.session.session_id)
        body = {
            "reason_codes": [r for r in form.get("reason", []) if r in _REASONS],
            "comment": field(form, "comment") or None,
        }
        path = f"/v1/bulletins/{bulletin_id}/reject"
        return await act(request, me, bulletin_id, "POST", path, body)

    return router
