"""Signing in (password and TOTP code), signing out, and the language switch.

Every sign-in is audited as a log event (`console.signed_in`, `console.sign_in_refused`
with a reason code and the user id when known); no password, code or token is logged.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.common.logging import get_logger
from services.console.accounts import SignInResult, revoke_session, set_language, sign_in
from services.console.deps import ConsoleDeps
from services.console.http.pages import (
    Viewer,
    check_csrf,
    field,
    redirect,
    render,
    safe_next,
    set_session_cookie,
    t_for,
    viewer,
)
from services.console.i18n import LANGUAGES
from services.console.permissions import HOME
from services.console.security import (
    LANGUAGE_COOKIE,
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    new_presession,
    set_cookie,
)

__all__ = ["signin_router"]

log = get_logger(__name__)
Me = Annotated[Viewer, Depends(viewer)]


def signin_router(deps: ConsoleDeps) -> APIRouter:
    """Sign-in, sign-out, language, account."""
    router = APIRouter(tags=["sign-in"])
    _signin_form_route(router, deps)
    _signin_submit_route(router, deps)
    _signout_route(router, deps)
    _language_route(router, deps)
    _home_routes(router)
    return router


def _sign_in_page(
    request: Request, deps: ConsoleDeps, *, error: str | None, status_code: int = 200
) -> Response:
    """The sign-in form, its CSRF token bound to a pre-sign-in cookie of this browser."""
    presession = request.cookies.get(PRESESSION_COOKIE) or new_presession()
    response = render(
        request,
        "signin.html.j2",
        status_code=status_code,
        presession=presession,
        error=error,
        next_path=safe_next(request.query_params.get("next", "/")),
        oidc_name=deps.settings.console_oidc_provider_name if deps.oidc else None,
    )
    secure = deps.settings.console_cookie_secure
    set_cookie(response, PRESESSION_COOKIE, presession, secure=secure, max_age=3600)
    return response


def _signin_form_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.get("/signin", include_in_schema=False)
    async def signin_form(request: Request) -> Response:
        return _sign_in_page(request, deps, error=None)


async def _attempt(deps: ConsoleDeps, form: dict[str, list[str]]) -> SignInResult:
    """One sign-in attempt with the form's login, password and code (one transaction)."""
    async with deps.auth_sessions.begin() as session:
        return await sign_in(
            session,
            box=deps.box,
            login=field(form, "login"),
            password=(form.get("password") or [""])[0],
            code=field(form, "code"),
            now=deps.clock(),
            ttl=deps.session_ttl,
            policy=deps.lockout,
        )


def _signin_submit_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/signin", include_in_schema=False)
    async def signin_submit(request: Request) -> Response:
        form = await check_csrf(request, request.cookies.get(PRESESSION_COOKIE))
        result = await _attempt(deps, form)
        if result.session is None or result.cookie is None:
            log.warning(
                "console.sign_in_refused",
                reason=result.reason,
                user_id=result.user_id,
                locked=result.locked_until is not None,
            )
            message = "signin.locked" if result.refusal == "locked" else "signin.refused"
            return _sign_in_page(request, deps, error=t_for(request)(message), status_code=401)
        log.info(
            "console.signed_in",
            user_id=result.session.user_id,
            role=result.session.role.value,
            session_id=result.session.session_id,
        )
        wanted = safe_next(field(form, "next", "/"))
        response = redirect(wanted if wanted != "/" else HOME[result.session.role])
        set_session_cookie(response, deps, result.cookie)
        response.delete_cookie(PRESESSION_COOKIE, path="/")
        return response


def _signout_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/signout", include_in_schema=False)
    async def signout(request: Request, me: Me) -> Response:
        await check_csrf(request, me.session.session_id)
        async with deps.auth_sessions.begin() as session:
            await revoke_session(session, session_id=me.session.session_id, now=deps.clock())
        log.info("console.signed_out", user_id=me.session.user_id)
        response = redirect("/signin")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def _language_route(router: APIRouter, deps: ConsoleDeps) -> None:
    @router.post("/language", include_in_schema=False)
    async def language(request: Request) -> Response:
        cookie = request.cookies.get(SESSION_COOKIE)
        me = await viewer(request) if cookie else None
        binding = me.session.session_id if me else request.cookies.get(PRESESSION_COOKIE)
        form = await check_csrf(request, binding)
        chosen = field(form, "language")
        if chosen not in LANGUAGES:
            chosen = "en"
        if me is not None:
            async with deps.auth_sessions.begin() as session:
                await set_language(session, user_id=me.session.user_id, language=chosen)
        response = redirect(safe_next(field(form, "next", "/")))
        secure = deps.settings.console_cookie_secure
        set_cookie(response, LANGUAGE_COOKIE, chosen, secure=secure, max_age=365 * 86400)
        return response


def _home_routes(router: APIRouter) -> None:
    @router.get("/", include_in_schema=False)
    async def home(me: Me) -> Response:
        return redirect(HOME[me.session.role])

    @router.get("/account", include_in_schema=False)
    async def account(request: Request, _me: Me) -> Response:
        return render(request, "account.html.j2")
