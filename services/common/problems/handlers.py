"""Exception handlers: every error a route raises or lets escape becomes a problem."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.cloudevents import current_correlation_id
from services.common.direct import asyncpg_unreachable
from services.common.logging import get_logger
from services.common.problems.errors import (
    CORRELATION_ID_HEADER,
    Problem,
    bad_request,
    phrase,
    problem_response,
    problem_type,
    service_unavailable,
)
from services.common.problems.middleware import correlation_id_for

__all__ = ["install_problem_handlers", "is_database_unavailable", "unhandled_error_response"]

# The package's name, as before the split: operators filter log lines on it.
log = get_logger("services.common.problems")

# --- handlers -----------------------------------------------------------------

_RETRY_AFTER_S = 5


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, including SQLAlchemy's wrapped driver error."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending and len(seen) < 16:
        current = pending.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        orig = getattr(current, "orig", None)
        pending.extend([current.__context__, current.__cause__])
        if isinstance(orig, BaseException):
            pending.append(orig)
    return seen


def _database_unavailable_types() -> tuple[type[BaseException], ...]:
    import sqlalchemy.exc

    return (
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.TimeoutError,  # pool exhausted
        TimeoutError,  # asyncio.TimeoutError is this builtin since 3.11
        ConnectionError,
    )


# Local-file OSErrors are bugs or misconfiguration, not an outage to retry.
_LOCAL_OS_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)


def is_database_unavailable(exc: BaseException) -> bool:
    """Tell whether `exc` (or anything it wraps) means the database cannot be reached."""
    import sqlalchemy.exc

    unavailable = _database_unavailable_types()
    for item in _exception_chain(exc):
        if isinstance(item, unavailable) or asyncpg_unreachable(item):
            return True
        if isinstance(item, sqlalchemy.exc.DBAPIError) and item.connection_invalidated:
            return True
        if isinstance(item, OSError) and not isinstance(item, _LOCAL_OS_ERRORS):
            return True
    return False


def _request_correlation_id(request: Request) -> str | None:
    return current_correlation_id.get() or getattr(request.state, "correlation_id", None)


async def _handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(
        exc, instance=request.url.path, correlation_id=_request_correlation_id(request)
    )


def _allowed_methods(request: Request) -> str | None:
    """Every method some route takes at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    # FastAPI keeps included routers nested; walk every route as its router would.
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods |= set(route_methods)
    return ", ".join(sorted(methods)) if methods else None


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status_phrase = phrase(exc.status_code)
    # A string detail was written by our code (or Starlette's) and is safe to show;
    # anything else may be structured input and is dropped.
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != status_phrase else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allow = _allowed_methods(request)
        if allow is not None:
            headers["Allow"] = allow
    problem = Problem(exc.status_code, status_phrase, detail, headers=headers)
    return problem_response(
        problem, instance=request.url.path, correlation_id=_request_correlation_id(request)
    )


async def _handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        # Only where and why - never `input` or `ctx`, which carry submitted values.
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    correlation_id = _request_correlation_id(request)
    if errors and all(error["type"] == "json_invalid" for error in errors):
        # FastAPI reports unparseable JSON as validation; it is a malformed request.
        problem = bad_request("The request body is not valid JSON.")
        return problem_response(problem, instance=request.url.path, correlation_id=correlation_id)
    problem = Problem(
        422,
        "Request validation failed",
        "The request does not match the schema; see `errors`.",
        type=problem_type("validation-failed"),
        extensions={"errors": errors},
    )
    return problem_response(problem, instance=request.url.path, correlation_id=correlation_id)


class _UnhandledErrorMiddleware:
    """Turn any exception no handler took into a 500 or 503 problem, logged once.

    This sits inside Starlette's ServerErrorMiddleware on purpose: a handler
    registered for `Exception` runs there, and ServerErrorMiddleware re-raises
    after responding, so the server would log the same error a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if response_started:
                # Too late for a problem response; let the server log and close it.
                raise
            response = unhandled_error_response(scope, exc)
            await response(scope, receive, send)


def unhandled_error_response(scope: Scope, exc: Exception) -> Response:
    """The 500 problem (503 for a database outage) for an exception no handler took, logged."""
    correlation_id = correlation_id_for(scope)
    path = str(scope.get("path", ""))
    headers = {CORRELATION_ID_HEADER: correlation_id} if correlation_id else {}
    context = {"correlation_id": correlation_id} if correlation_id else {}
    with structlog.contextvars.bound_contextvars(**context):
        if is_database_unavailable(exc):
            # An outage is not a bug: one warning line, no traceback per request.
            log.warning(
                "http.database_unavailable",
                method=scope.get("method"),
                path=path,
                error_type=type(exc).__name__,
            )
            problem = service_unavailable(
                "The database is unavailable; retry shortly.", retry_after_s=_RETRY_AFTER_S
            )
        else:
            log.exception("http.unhandled_error", method=scope.get("method"), path=path)
            problem = Problem(
                500,
                "Internal Server Error",
                "An unexpected error occurred. Quote the correlation id when reporting it.",
                type=problem_type("internal-error"),
            )
    response = problem_response(problem, instance=path, correlation_id=correlation_id)
    # The correlation middleware may already have exited when this runs.
    for name, value in headers.items():
        response.headers.setdefault(name, value)
    return response


_Handler = Callable[[Request, Exception], Awaitable[Response]]


def install_problem_handlers(app: FastAPI, *, catch_all: bool = True) -> None:
    """Make every error from `app` an RFC 9457 problem+json response.

    `catch_all=False`: the app's own outer layer answers what no handler took with
    `unhandled_error_response` (services/common/edge.py does, in the layer it folds).
    """
    handlers: dict[type[Exception], _Handler] = {
        Problem: _handle_problem,
        StarletteHTTPException: _handle_http_exception,
        RequestValidationError: _handle_validation_error,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
    if catch_all:
        app.add_middleware(_UnhandledErrorMiddleware)
