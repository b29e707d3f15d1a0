"""The HTTP face every service shares: health, metrics, docs, errors and middleware."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.specification import AsyncAPI, get_asyncapi_html
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logging import RequestLine, get_logger, request_line
from services.common.metrics import (
    CONTENT_TYPE_LATEST,
    HTTP_REQUEST_SECONDS,
    HTTP_REQUESTS,
    OUTBOX_PENDING,
    exposition,
)
from services.common.openapi import install_openapi
from services.common.outbox import pending_count
from services.common.problems import (
    BodyGuardMiddleware,
    CorrelationIdMiddleware,
    install_problem_handlers,
)
from services.common.runtime import ServiceRuntime
from services.common.serve import worker_role

__all__ = ["UNMATCHED_ROUTE", "create_http_app", "health_router", "metrics_router", "route_label"]

log = get_logger(__name__)
# One line per request, written by the app (uvicorn's own access line is off: serve.py).
access_log = get_logger("aviso.access")


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


UNMATCHED_ROUTE = "unmatched"


def route_label(scope: Scope) -> str:
    """The template of the route that handled a request, never its raw path.

    The router records the route it chose in the scope (also for a 405); anything no
    route took (a 404, a trailing-slash redirect) shares one label, so unauthenticated
    requests cannot create series, and ids never appear in metrics.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE


class _EdgeMiddleware:
    """Count, time and log every HTTP request; make router-made redirects relative.

    One pure ASGI layer with one `send` wrapper for these jobs: every layer costs a call
    and a closure per message on every request, and these two run on all of them.

    Metrics: by service, route template, method and status; the label children are
    looked up once per (route, method, status) and kept, not resolved per request.

    Redirects: Starlette answers `/v1/notices/` with `307 Location: http://<Host
    header>/v1/notices`; a forged Host would send the client elsewhere (and poison a
    cache in front). Only a redirect no route produced (no `route` in the scope) is
    rewritten; a path-only Location is resolved by the client against the URL it
    actually used.
    """

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        # Bounded: routes are templates (or UNMATCHED_ROUTE), methods a fixed set, and
        # statuses the few the service answers with.
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._timers: dict[str, Histogram] = {}
        # Which worker process answered, when several serve the port (serve.py).
        role = worker_role()
        self._who: dict[str, int] = {"worker": role.index} if role.count > 1 else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if 300 <= status < 400 and scope.get("route") is None:
                    message["headers"] = [
                        (name, _path_only(value) if name.lower() == b"location" else value)
                        for name, value in message.get("headers", [])
                    ]
            await send(message)

        with request_line() as line:
            try:
                await self.app(scope, receive, edge_send)
            finally:
                seconds = time.perf_counter() - started
                self._record(scope, status, seconds)
                self._log(scope, line, status, seconds)

    def _log(self, scope: Scope, line: RequestLine, status: int, seconds: float) -> None:
        """The request's one line: what the app said about it, or `http.request`."""
        client = scope.get("client")
        state = scope.get("state") or {}
        outcome = {
            "http_method": scope.get("method"),
            # The path without its query string: a query may carry a signed token.
            "http_path": scope.get("path"),
            "http_route": route_label(scope),
            "http_status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": client[0] if client else None,
            # Bound to the context inside, by CorrelationIdMiddleware: gone out here.
            "correlation_id": state.get("correlation_id"),
            "request_id": state.get("request_id"),
            **self._who,
        }
        if line.event is None or line.logger is None:
            access_log.info("http.request", **outcome)
        else:
            line.logger.info(line.event, **line.fields, **outcome)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_label(scope)
        method = str(scope.get("method", ""))
        if method not in _METHODS:
            method = "other"  # the method is client input too
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = HTTP_REQUESTS.labels(self.service, route, method, str(status))
            self._counters[key] = counter
        counter.inc()
        timer = self._timers.get(route)
        if timer is None:
            timer = HTTP_REQUEST_SECONDS.labels(self.service, route)
            self._timers[route] = timer
        timer.observe(seconds)


def _path_only(location: bytes) -> bytes:
    parts = urlsplit(location.decode("latin-1"))
    path = "/" + parts.path.lstrip("/")  # "//evil.example" would be another host again
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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

    app = FastAPI(
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
    install_problem_handlers(app)
    app.add_middleware(BodyGuardMiddleware, max_body_bytes=runtime.settings.max_body_bytes)
    app.add_middleware(CorrelationIdMiddleware)
    app.add_middleware(_EdgeMiddleware, service=runtime.name)

    app.include_router(health_router(runtime))
    app.include_router(_asyncapi_router(runtime, title, version))
    for router in routers:
        app.include_router(router)
    install_openapi(app, declared=problems or {})
    return app
