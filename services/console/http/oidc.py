"""Single sign-on pages: off to the OpenID Provider, and back with a code.

    GET /signin/oidc?next=/path     a fresh pending sign-in (state, nonce, PKCE verifier)
                                    sealed in a cookie, and a redirect to the provider
    GET /signin/oidc/callback       state checked, code exchanged, ID token verified, the
                                    linked account signed in exactly as a local sign-in does

Cookies and SameSite: the callback is a navigation that starts at the provider, another
site. The pending sign-in cookie is therefore SameSite=Lax (sent on that top-level GET;
it holds nothing but the values the callback must match). The session cookie stays
SameSite=Strict, and a browser does not send it on the rest of a navigation a cross-site
page started, so the callback answers with a page of the console's own that moves on to
the wanted page: that second navigation starts on the console and carries the session.

Every outcome is audited as a log event: `console.signed_in` (method oidc) or
`console.sign_in_refused` with the reason (no code, token or state is ever logged).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from services.common.logging import get_logger
from services.common.runtime import DevelopmentSecretsRefused
from services.console.accounts import sign_in_with_identity
from services.console.config import ConsoleSettings
from services.console.deps import ConsoleDeps
from services.console.http.pages import render, safe_next, set_session_cookie
from services.console.oidc import (
    OidcClient,
    OidcIdentity,
    OidcRefused,
    PendingSignIn,
    PendingSignInSealer,
    insecure_issuer,
)
from services.console.permissions import HOME
from services.console.security import secure_headers

__all__ = ["CALLBACK_PATH", "PENDING_COOKIE", "oidc_client", "oidc_router"]

log = get_logger(__name__)
PENDING_COOKIE = "aviso_oidc"
CALLBACK_PATH = "/signin/oidc/callback"
# Error codes of RFC 6749 4.1.2.1 and OpenID Connect Core 3.1.2.6 that may be logged as they
# are; anything else the provider sends back is logged as "other" (it is the browser's input).
_PROVIDER_ERRORS = frozenset(
    {
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
    }
)
# What the browser is told, by reason: (HTTP status, message key).
_REFUSALS: dict[str, tuple[int, str]] = {
    "pending": (400, "oidc.refused.pending"),
    "state": (400, "oidc.refused.state"),
    "provider": (400, "oidc.refused.provider"),
    "token": (400, "oidc.refused.token"),
    "unavailable": (502, "oidc.refused.unavailable"),
    "unknown_identity": (403, "oidc.refused.unknown_identity"),
    "disabled": (403, "oidc.refused.disabled"),
}


def oidc_client(settings: ConsoleSettings, *, clock: Callable[[], datetime]) -> OidcClient | None:
    """The provider's client when an issuer is configured; refuses an unsafe configuration."""
    issuer = settings.console_oidc_issuer
    if not issuer:
        return None
    if "AVISO_CONSOLE_OIDC_CLIENT_SECRET" in settings.development_secrets() and not (
        settings.development_mode
    ):
        # Published in this repository: anyone could redeem codes as the console.
        log.error(
            "service.development_secrets_refused",
            service="console",
            settings=["AVISO_CONSOLE_OIDC_CLIENT_SECRET"],
        )
        raise DevelopmentSecretsRefused(
            "AVISO_CONSOLE_OIDC_CLIENT_SECRET holds its development value; set the secret "
            "the identity provider gave the console, or AVISO_DEVELOPMENT_MODE=true"
        )
    if insecure_issuer(issuer):
        raise ValueError("AVISO_CONSOLE_OIDC_ISSUER must be an https URL (http only on loopback)")
    return OidcClient(
        issuer=issuer,
        client_id=settings.console_oidc_client_id,
        client_secret=settings.console_oidc_client_secret.get_secret_value(),
        http=httpx.AsyncClient(timeout=settings.console_api_timeout_s),
        clock=clock,
    )


def _redirect_uri(request: Request, deps: ConsoleDeps) -> str:
    """The callback URL registered at the provider: from public_base_url, else this request."""
    base = deps.settings.public_base_url or str(request.base_url)
    return base.rstrip("/") + CALLBACK_PATH


def _configured(deps: ConsoleDeps) -> OidcClient:
    if deps.oidc is None:
        raise HTTPException(status_code=404)
    return deps.oidc


def oidc_router(deps: ConsoleDeps) -> APIRouter:
    """The two single sign-on routes (answer 404 while no provider is configured)."""
    router = APIRouter(tags=["sign-in"])
    sealer = PendingSignInSealer(deps.secret)
    _start_route(router, deps, sealer)
    _callback_route(router, deps, sealer)
    return router


def _start_route(router: APIRouter, deps: ConsoleDeps, sealer: PendingSignInSealer) -> None:
    @router.get("/signin/oidc", include_in_schema=False)
    async def start(request: Request) -> Response:
        client = _configured(deps)
        wanted = safe_next(request.query_params.get("next", "/"))
        pending = PendingSignIn.begin(next_path=wanted, now=deps.clock())
        try:
            url = await client.authorization_url(
                pending=pending, redirect_uri=_redirect_uri(request, deps)
            )
        except OidcRefused as refused:
            return _refused(request, refused)
        response = RedirectResponse(url, status_code=303)
        secure_headers(response)
        # Lax, not Strict: it must come back with the provider's redirect (module docstring).
        response.set_cookie(
            PENDING_COOKIE,
            sealer.seal(pending),
            max_age=int((pending.expires_at - deps.clock()).total_seconds()),
            httponly=True,
            secure=deps.settings.console_cookie_secure,
            samesite="lax",
            path="/signin/oidc",
        )
        return response


def _callback_route(router: APIRouter, deps: ConsoleDeps, sealer: PendingSignInSealer) -> None:
    @router.get(CALLBACK_PATH, include_in_schema=False)
    async def callback(request: Request) -> Response:
        client = _configured(deps)
        try:
            pending, identity = await _identity(request, deps, client, sealer)
            async with deps.auth_sessions.begin() as session:
                result = await sign_in_with_identity(
                    session, identity=identity, now=deps.clock(), ttl=deps.session_ttl
                )
            if result.session is None or result.cookie is None:
                if result.reason == "disabled":
                    raise OidcRefused("disabled", identity.subject)
                raise OidcRefused("unknown_identity", identity.subject)
        except OidcRefused as refused:
            return _refused(request, refused)
        log.info(
            "console.signed_in",
            method="oidc",
            user_id=result.session.user_id,
            role=result.session.role.value,
            session_id=result.session.session_id,
        )
        wanted = pending.next_path
        target = wanted if wanted != "/" else HOME[result.session.role]
        response = render(request, "signin_oidc_continue.html.j2", target=target)
        set_session_cookie(response, deps, result.cookie)
        response.delete_cookie(PENDING_COOKIE, path="/signin/oidc")
        return response


async def _identity(
    request: Request, deps: ConsoleDeps, client: OidcClient, sealer: PendingSignInSealer
) -> tuple[PendingSignIn, OidcIdentity]:
    """This browser's pending sign-in and the verified identity the provider sent back."""
    query = request.query_params
    pending = sealer.open(request.cookies.get(PENDING_COOKIE), now=deps.clock())
    if "error" in query:
        error = query["error"]
        raise OidcRefused("provider", error if error in _PROVIDER_ERRORS else "other")
    pending.check_state(query.get("state"))
    code = query.get("code")
    if not code or len(code) > 2048:
        raise OidcRefused("token", "no code")
    identity = await client.identity(
        code=code, pending=pending, redirect_uri=_redirect_uri(request, deps)
    )
    return pending, identity


def _refused(request: Request, refused: OidcRefused) -> Response:
    """The refusal page, audited; the pending sign-in is spent either way."""
    status, key = _REFUSALS[refused.reason]
    identified = refused.reason in ("unknown_identity", "disabled")
    log.warning(
        "console.sign_in_refused",
        method="oidc",
        reason=refused.reason,
        # The provider's opaque id of the person: what an admin links (`aviso users link`).
        oidc_subject=refused.detail if identified else None,
        detail=None if identified else refused.detail or None,
    )
    response = render(
        request,
        "signin_oidc_refused.html.j2",
        status_code=status,
        key=key,
        subject=refused.detail if refused.reason == "unknown_identity" else None,
    )
    response.delete_cookie(PENDING_COOKIE, path="/signin/oidc")
    return response
