"""The HTTP face every service shares: health, metrics, docs, errors and middleware."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.specification import AsyncAPI, get_asyncapi_html
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Match

from services.common.logging import get_logger
from services.common.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS, OUTBOX_PENDING
from services.common.outbox import pending_count
from services.common.problems import (
    BodyGuardMiddleware,
    CorrelationIdMiddleware,
    install_problem_handlers,
)
from services.common.runtime import ServiceRuntime

__all__ = ["create_http_app", "health_router"]

log = get_logger(__name__)


def health_router(runtime: ServiceRuntime) -> APIRouter:
    """`/internal/alive`, `/internal/ready` and `/metrics`."""
    router = APIRouter(tags=["internal"])

    @router.get("/internal/alive", summary="The process is up")
    async def alive() -> dict[str, str]:
        return {"status": "alive", "service": runtime.name}

    @router.get(
        "/internal/ready",
        summary="The database answers SELECT 1 and the Kafka cluster answers a metadata request",
        responses={503: {"description": "A dependency is unavailable"}},
    )
    async def ready() -> JSONResponse:
        report = await runtime.readiness()
        if report["ready"] and runtime.started:
            return JSONResponse({"status": "ready", "service": runtime.name, **report})
        return JSONResponse(
            {
                "type": "https://aviso.local/problems/not-ready",
                "title": "Service not ready",
                "status": 503,
                "detail": "A dependency is unavailable or the service is still starting.",
                "service": runtime.name,
                **report,
            },
            status_code=503,
            media_type="application/problem+json",
            headers={"Retry-After": "5"},
        )

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        try:
            async with runtime.sessions() as session:
                OUTBOX_PENDING.labels(runtime.name).set(await pending_count(session))
        except Exception as exc:  # a scrape must not fail because the database blinked
            log.warning("metrics.outbox_pending_unavailable", error_type=type(exc).__name__)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def _asyncapi_router(runtime: ServiceRuntime, title: str, version: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    spec = AsyncAPI(runtime.broker, title=f"{title} events", version=version)

    @router.get("/docs/asyncapi")
    async def asyncapi_html() -> HTMLResponse:
        return HTMLResponse(get_asyncapi_html(spec.to_specification()))

    @router.get("/docs/asyncapi.json")
    async def asyncapi_json() -> Response:
        return Response(spec.to_specification().to_json(), media_type="application/json")

    return router


def _route_template(app: FastAPI, request: Request) -> str:
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", request.url.path))
    return "unmatched"


def create_http_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    version: str = "0.1.0",
    routers: Sequence[APIRouter] = (),
    on_started: Callable[[FastAPI], Awaitable[None]] | None = None,
) -> FastAPI:
    """A FastAPI app whose lifespan starts and stops the runtime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if on_started is not None:
            await on_started(app)
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.token_verifier = runtime.token_verifier
    install_problem_handlers(app)
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=runtime.settings.max_body_bytes)
    app.add_middleware(CorrelationIdMiddleware)

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_template(app, request)
        HTTP_REQUESTS.labels(runtime.name, route, request.method, str(response.status_code)).inc()
        HTTP_REQUEST_SECONDS.labels(runtime.name, route).observe(time.perf_counter() - started)
        return response

    app.include_router(health_router(runtime))
    app.include_router(_asyncapi_router(runtime, title, version))
    for router in routers:
        app.include_router(router)
    return app
