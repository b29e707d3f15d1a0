"""Composition root of the console: one ConsoleDeps, the pages, and their error pages.

The console owns no domain data. Its only tables are its users and sessions in the
`auth` schema (services/common/auth.py); every page reads and acts through the three
services' APIs with the signed-in person's token (see accounts/sessions.py for why the
session cookie is that token).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from services.common.db import make_engine, make_session_factory, ping
from services.common.logging import get_logger
from services.common.migrations import upgrade
from services.common.runtime import refuse_development_secrets
from services.console.accounts import SecretBox, sweep_sessions
from services.console.api import ApiProblem, ServiceApi
from services.console.config import ConsoleSettings
from services.console.deps import ConsoleDeps
from services.console.http import ROUTERS
from services.console.http.oidc import oidc_client
from services.console.http.pages import CsrfRefused, SignInRequired, render, sign_in_redirect
from services.console.security import SESSION_COOKIE, FormTooLarge

__all__ = ["compose", "create_app", "load_places"]

log = get_logger(__name__)
_STATIC = Path(__file__).parent / "static"
_SWEEP_INTERVAL_S = 60.0


def load_places(path: Path) -> tuple[tuple[str, str], ...]:
    """(area code, name) for every name of every area of the gazetteer, Spanish first."""
    data = yaml.safe_load(path.read_text("utf-8")) if path.exists() else {"areas": []}
    places: list[tuple[str, str]] = []
    for area in data.get("areas", []):
        names = [area["name"].get("es"), area["name"].get("en")]
        for name in [n for n in names if n]:
            places.append((str(area["id"]), str(name)))
    return tuple(places)


def compose(
    settings: ConsoleSettings,
    *,
    clock: Callable[[], datetime] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ConsoleDeps:
    """The one deps object: auth database, the services' APIs, the clock, the places."""
    engine = make_engine(settings, "auth")
    clock = clock or (lambda: datetime.now(UTC))
    client = httpx.AsyncClient(timeout=settings.console_api_timeout_s, transport=transport)
    deps = ConsoleDeps(
        settings=settings,
        auth_sessions=make_session_factory(engine),
        api=ServiceApi(
            urls={
                "intake": settings.console_intake_url.rstrip("/"),
                "router": settings.console_router_url.rstrip("/"),
                "rumor_control": settings.console_rumor_control_url.rstrip("/"),
            },
            client=client,
        ),
        box=SecretBox(settings.console_secret.get_secret_value()),
        clock=clock,
        places=load_places(settings.gazetteer_file()),
        oidc=oidc_client(settings, clock=clock),
    )
    return deps


def create_app(
    settings: ConsoleSettings | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    migrate: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The console's FastAPI app (`transport`: how it reaches the services, for tests)."""
    settings = settings or ConsoleSettings()
    # Before anything is built: with the published key anyone can forge CSRF tokens and
    # open every sealed authenticator secret.
    refuse_development_secrets(settings, service="console")
    deps = compose(settings, clock=clock, transport=transport)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await upgrade(settings, "auth")
        sweeper = asyncio.create_task(_sweep(deps), name="console-session-sweeper")
        log.info("service.started", service="console")
        try:
            yield
        finally:
            log.info("service.stopping", service="console")
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await deps.api.client.aclose()
            if deps.oidc is not None:
                await deps.oidc.aclose()
            engine = deps.auth_sessions.kw["bind"]
            await engine.dispose()
            log.info("service.stopped", service="console")

    app = FastAPI(title="Aviso console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.deps = deps
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router(deps))
    _probes(app, deps)
    _error_pages(app)
    return app


async def _sweep(deps: ConsoleDeps) -> None:
    """Revoke expired and idle sessions, so their tokens stop working at the services too."""
    while True:
        try:
            async with deps.auth_sessions.begin() as session:
                ended = await sweep_sessions(session, now=deps.clock(), idle=deps.idle_timeout)
            if ended:
                log.info("console.sessions_swept", ended=ended)
        except Exception:
            log.exception("console.sweep_failed")
        await asyncio.sleep(_SWEEP_INTERVAL_S)


def _probes(app: FastAPI, deps: ConsoleDeps) -> None:
    @app.get("/internal/alive", include_in_schema=False)
    async def alive() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/internal/ready", include_in_schema=False)
    async def ready() -> Response:
        try:
            await ping(deps.auth_sessions.kw["bind"])
            ok = True
        except Exception:
            ok = False
        return JSONResponse({"status": "ready" if ok else "not ready"}, 200 if ok else 503)


def _error_pages(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def signin_required(_request: Request, exc: SignInRequired) -> Response:
        response = sign_in_redirect(exc.next_path)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _exc: CsrfRefused) -> Response:
        log.warning("console.csrf_refused", path=request.url.path)
        return render(request, "error.html.j2", status_code=403, key="error.csrf")

    @app.exception_handler(FormTooLarge)
    async def too_large(request: Request, _exc: FormTooLarge) -> Response:
        return render(request, "error.html.j2", status_code=413, key="error.too_large")

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: ApiProblem) -> Response:
        if exc.status == 401:
            # The service no longer accepts the session's token (revoked or expired).
            response = sign_in_redirect(request.url.path)
            response.delete_cookie(SESSION_COOKIE, path="/")
            return response
        key = {403: "error.forbidden", 404: "error.not_found"}.get(exc.status, "error.service")
        status = exc.status if exc.status in (403, 404) else 502
        return render(request, "error.html.j2", status_code=status, key=key)
