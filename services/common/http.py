"""The HTTP face every service shares: health, metrics, docs, errors and middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager

import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from faststream.specification import AsyncAPI, get_asyncapi_html
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp

from services.common.edge import UNMATCHED_ROUTE, RequestEdge, route_label
from services.common.logging import get_logger
from services.common.metrics import CONTENT_TYPE_LATEST, OUTBOX_PENDING, exposition
from services.common.openapi import install_openapi
from services.common.outbox import pending_count
from services.common.problems import install_problem_handlers
from services.common.runtime import ServiceRuntime
from services.common.serve import worker_role

__all__ = ["UNMATCHED_ROUTE", "create_http_app", "health_router", "metrics_router", "route_label"]

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

    if runtime.settings.metrics_address is None:
        router.include_router(metrics_router(runtime))
    return router


def metrics_router(runtime: ServiceRuntime) -> APIRouter:
    """`/metrics`: on the service's port, or alone on `metrics_address`."""
    router = APIRouter(tags=["internal"])

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        try:
            async with runtime.sessions() as session:
                OUTBOX_PENDING.labels(runtime.name).set(await pending_count(session))
        except Exception as exc:  # a scrape must not fail because the database blinked
            log.warning("metrics.outbox_pending_unavailable", error_type=type(exc).__name__)
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    return router


class _MetricsServer:
    """`/metrics` served on its own address (an internal interface), beside the service."""

    def __init__(self, runtime: ServiceRuntime, address: str) -> None:
        host, _, port = address.rpartition(":")
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        app.include_router(metrics_router(runtime))
        config = uvicorn.Config(
            app,
            host=host or "127.0.0.1",
            port=int(port),
            log_config=None,
            lifespan="off",
            http="httptools",
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Serve in the background; return the bound port (useful when 0 was asked)."""
        self._task = asyncio.create_task(self._server.serve(), name="metrics-server")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises the bind error
                raise RuntimeError("the metrics server stopped before it started")
            await asyncio.sleep(0.01)
        port: int = self._server.servers[0].sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Stop serving and wait for the server to close."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task


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


class _ServiceApp(FastAPI):
    """FastAPI, without its two outermost layers where they do nothing for a service.

    FastAPI wraps every request in `ServerErrorMiddleware` (a 500 for an exception that
    escapes every other layer, then re-raised to the server) and `ExceptionTelemetryMiddleware`
    (which records an exception for telemetry, off here): two more calls and a `send`
    closure a request. Here `RequestEdge` answers every exception raised below it with a
    problem, and what escapes the edge itself uvicorn answers with the same plain 500 and
    logs, as it did after `ServerErrorMiddleware` re-raised it. So both are left out while
    telemetry is off, the app is not in debug mode (its HTML tracebacks are
    `ServerErrorMiddleware`'s) and no handler for 500 or `Exception` is registered (which
    only `ServerErrorMiddleware` would call); otherwise the stack is FastAPI's own.
    """

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.debug or self._native_telemetry.enabled() or self._error_handler_registered():
            return stack
        if isinstance(stack, ServerErrorMiddleware) and isinstance(
            stack.app, ExceptionTelemetryMiddleware
        ):
            return stack.app.app
        return stack

    def _error_handler_registered(self) -> bool:
        return any(key in (500, Exception) for key in self.exception_handlers)


def create_http_app(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str,
    version: str = "0.1.0",
    routers: Sequence[APIRouter] = (),
    on_started: Callable[[FastAPI], Awaitable[None]] | None = None,
    problems: Mapping[str, Collection[int]] | None = None,
) -> FastAPI:
    """A FastAPI app whose lifespan starts and stops the runtime.

    `problems`: error statuses of operations that their routes cannot show (a conflict raised
    in a use case), as `{"POST /v1/things/{id}/approve": {409}}`; see services/common/openapi.py.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        # Several workers: one serves the separate metrics address (any worker's `/metrics`
        # reports the whole group's, see services/common/metrics.py).
        address = runtime.settings.metrics_address if worker_role().leads else None
        metrics_server = _MetricsServer(runtime, address) if address else None
        try:
            if metrics_server is not None:
                app.state.metrics_port = await metrics_server.start()
            if on_started is not None:
                await on_started(app)
            yield
        finally:
            if metrics_server is not None:
                await metrics_server.stop()
            await runtime.stop()

    app = _ServiceApp(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry asks the three global providers on every
        # request (~2.6 us); nothing here configures OpenTelemetry, so nothing is lost.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.state.token_verifier = runtime.token_verifier
    # The catch-all problem is the edge's (one layer for ids, body guard, catch-all,
    # metrics and the log line: services/common/edge.py).
    install_problem_handlers(app, catch_all=False)
    app.add_middleware(
        RequestEdge, service=runtime.name, max_body_bytes=runtime.settings.max_body_bytes
    )

    app.include_router(health_router(runtime))
    app.include_router(_asyncapi_router(runtime, title, version))
    for router in routers:
        app.include_router(router)
    install_openapi(app, declared=problems or {})
    return app
