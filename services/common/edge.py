"""The request's edge: one ASGI layer doing the work four layers did around every request.

Every service's app wrapped each request in four of its own pure ASGI layers: the edge
(metrics, the request's log line, relative redirects), the correlation ids, the body
guard and the catch-all problem. Each was a coroutine call and most a `send` closure per
request, and each message of the answer went through every closure. `RequestEdge` does
their work in one call with one `send` wrapper, in the order they ran (outermost first):

1. the request's log-line block opens and its clock starts (the edge);
2. the correlation and request ids are taken, kept in the scope's state and bound to the
   log context (the correlation layer);
3. a JSON body on the API's paths is read and checked; a refusal is answered as a problem
   here, with the ids (the body guard);
4. the app runs; an exception no handler took becomes a 500 or 503 problem, unless the
   answer had started (the catch-all, inside the ids' binding: its log line carries them);
5. the log context is reset, then the request is counted, timed and logged (the edge,
   which reads the ids from the state, not the context).

On the answer's start, the ids are set on it (the app's own replaced) and a redirect no
route made gets a path-only Location, as the separate layers did. The layers stay in
services/common/problems for apps that compose them one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.cloudevents import current_correlation_id
from services.common.logging import RequestLine, get_logger, request_line
from services.common.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from services.common.problems import CORRELATION_ID_HEADER, problem_response
from services.common.problems.handlers import unhandled_error_response
from services.common.problems.middleware import (
    BodyGuardMiddleware,
    BodyRejected,
    replaying,
    set_id_headers,
    take_request_ids,
)
from services.common.serve import worker_role

__all__ = ["UNMATCHED_ROUTE", "RequestEdge", "route_label"]

# One line per request, written by the app (uvicorn's own access line is off: serve.py).
access_log = get_logger("aviso.access")

UNMATCHED_ROUTE = "unmatched"
_CORRELATION_NAME = CORRELATION_ID_HEADER.lower().encode("latin-1")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Whether the answer has started (a problem can no longer replace it).
_Started = Callable[[], bool]


def route_label(scope: Scope) -> str:
    """The template of the route that handled a request, never its raw path.

    The router records the route it chose in the scope (also for a 405); anything no
    route took (a 404, a trailing-slash redirect) shares one label, so unauthenticated
    requests cannot create series, and ids never appear in metrics.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE


class RequestEdge:
    """Ids, body guard, catch-all problem, metrics and the log line: one layer, one wrapper.

    Metrics: by service, route template, method and status; the label children are
    looked up once per (route, method, status) and kept, not resolved per request.

    Redirects: Starlette answers `/v1/notices/` with `307 Location: http://<Host
    header>/v1/notices`; a forged Host would send the client elsewhere (and poison a
    cache in front). Only a redirect no route produced (no `route` in the scope) is
    rewritten; a path-only Location is resolved by the client against the URL it
    actually used.
    """

    def __init__(self, app: ASGIApp, *, service: str, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        # Its checks only: the guard's own `app` is never called from here.
        self._guard = BodyGuardMiddleware(app, max_body_bytes=max_body_bytes)
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
        answering = False
        with request_line() as line:
            correlation_id, request_id = take_request_ids(scope, _CORRELATION_NAME)

            async def edge_send(message: Message) -> None:
                nonlocal status, answering
                if message["type"] == "http.response.start":
                    answering = True
                    status = int(message["status"])
                    set_id_headers(message, _CORRELATION_NAME, correlation_id, request_id)
                    if 300 <= status < 400 and scope.get("route") is None:
                        message["headers"] = _relative_location(message["headers"])
                await send(message)

            token = current_correlation_id.set(correlation_id)
            # Bound, then reset by their tokens (no scan of the context's variables).
            bound = structlog.contextvars.bind_contextvars(
                correlation_id=correlation_id, request_id=request_id
            )
            try:
                await self._guarded(scope, receive, edge_send, lambda: answering)
            finally:
                structlog.contextvars.reset_contextvars(**bound)
                current_correlation_id.reset(token)
                seconds = time.perf_counter() - started
                self._record(scope, status, seconds)
                self._log(scope, line, status, seconds)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, started: _Started) -> None:
        """The body guard, then the app with the catch-all around it."""
        if self._guard.guards(scope):
            try:
                body = await self._guard.read_checked_body(scope, receive)
            except BodyRejected as rejected:
                response = problem_response(
                    rejected.problem,
                    instance=str(scope["path"]),
                    correlation_id=current_correlation_id.get(),
                )
                await response(scope, receive, send)
                return
            if body is None:
                return  # the client went away mid-body; nobody to answer
            receive = replaying(body, receive)
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if started():
                # Too late for a problem response; let the server log and close it.
                raise
            await unhandled_error_response(scope, exc)(scope, receive, send)

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
            # Unbound from the log context by now: read from the state.
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


def _relative_location(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [
        (name, _path_only(value) if name.lower() == b"location" else value)
        for name, value in headers
    ]


def _path_only(location: bytes) -> bytes:
    parts = urlsplit(location.decode("latin-1"))
    path = "/" + parts.path.lstrip("/")  # "//evil.example" would be another host again
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")
