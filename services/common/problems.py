"""RFC 9457 problem+json errors, request guards and correlation ids for FastAPI.

Every error a service returns - ours, Starlette's, validation, a database outage,
a bug - leaves as `application/problem+json`, and none of them echoes request
input or exception text, because either may hold restricted detail.
"""

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# One correlation contextvar per process: the event envelope (cloudevents) reads
# the same object when it stamps `ce_correlationid` on outgoing events.
from services.common.cloudevents import current_correlation_id
from services.common.logging import get_logger

__all__ = [
    "CORRELATION_ID_HEADER",
    "PROBLEM_JSON",
    "PROBLEM_TYPE_BASE",
    "REQUEST_ID_HEADER",
    "BodyGuardMiddleware",
    "CorrelationIdMiddleware",
    "Problem",
    "bad_request",
    "conflict",
    "current_correlation_id",
    "forbidden",
    "get_correlation_id",
    "install_problem_handlers",
    "is_database_unavailable",
    "is_valid_correlation_id",
    "new_correlation_id",
    "not_found",
    "payload_too_large",
    "problem_response",
    "problem_type",
    "service_unavailable",
    "unauthorized",
    "unsupported_media_type",
]

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://aviso.local/problems/"
CORRELATION_ID_HEADER = "X-Correlation-ID"
REQUEST_ID_HEADER = "X-Request-ID"

# Standard members a caller's extensions must not overwrite.
_STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})

log = get_logger(__name__)


def problem_type(slug: str) -> str:
    """Return the type URI for an Aviso problem slug (e.g. `notice-conflict`)."""
    return f"{PROBLEM_TYPE_BASE}{slug}"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Problem(Exception):
    """An HTTP error to be rendered as RFC 9457 problem details."""

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        *,
        type: str = "about:blank",  # shadows the builtin: it is the RFC's member name
        extensions: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # RFC 9457 4.2.1: with about:blank the title SHOULD be the status phrase.
        self.status = status
        self.title = title or _phrase(status)
        self.detail = detail
        self.type = type
        self.extensions: dict[str, Any] = dict(extensions or {})
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(f"{status} {self.title}")

    def to_dict(self, *, instance: str | None = None) -> dict[str, Any]:
        """Return the problem+json body."""
        body: dict[str, Any] = {
            key: value for key, value in self.extensions.items() if key not in _STANDARD_MEMBERS
        }
        body.update(type=self.type, title=self.title, status=self.status)
        if self.detail is not None:
            body["detail"] = self.detail
        if instance is not None:
            body["instance"] = instance
        return body


def not_found(detail: str | None = None, **extensions: Any) -> Problem:
    """404: the resource does not exist (or the caller may not know it exists)."""
    return Problem(404, "Not Found", detail, type=problem_type("not-found"), extensions=extensions)


def forbidden(detail: str | None = None, **extensions: Any) -> Problem:
    """403: authenticated, but this role may not do this."""
    return Problem(403, "Forbidden", detail, type=problem_type("forbidden"), extensions=extensions)


def unauthorized(detail: str | None = None, *, invalid_token: bool = False) -> Problem:
    """401 with a `WWW-Authenticate: Bearer` challenge (RFC 6750)."""
    challenge = 'Bearer realm="aviso"'
    if invalid_token:
        challenge += ', error="invalid_token"'
    return Problem(
        401,
        "Unauthorized",
        detail,
        type=problem_type("unauthorized"),
        headers={"WWW-Authenticate": challenge},
    )


def conflict(detail: str | None = None, **extensions: Any) -> Problem:
    """409: the request conflicts with the resource's current state."""
    return Problem(409, "Conflict", detail, type=problem_type("conflict"), extensions=extensions)


def unsupported_media_type(
    detail: str | None = None, *, accepted: Sequence[str] = ("application/json",)
) -> Problem:
    """415, naming the media types the endpoint accepts."""
    return Problem(
        415,
        "Unsupported Media Type",
        detail,
        type=problem_type("unsupported-media-type"),
        extensions={"accepted": list(accepted)},
        # RFC 9110 15.5.16: Accept-Post/Accept-Patch style hint for the client.
        headers={"Accept": ", ".join(accepted)},
    )


def payload_too_large(detail: str | None = None, *, max_bytes: int | None = None) -> Problem:
    """413: the body exceeds the configured limit."""
    extensions = {} if max_bytes is None else {"max_body_bytes": max_bytes}
    return Problem(
        413,
        "Content Too Large",
        detail,
        type=problem_type("payload-too-large"),
        extensions=extensions,
    )


def bad_request(detail: str | None = None, **extensions: Any) -> Problem:
    """400: the request is malformed (not merely invalid against the schema)."""
    return Problem(
        400, "Bad Request", detail, type=problem_type("bad-request"), extensions=extensions
    )


def service_unavailable(detail: str | None = None, *, retry_after_s: int = 5) -> Problem:
    """503 with `Retry-After`: a dependency is down; the client should retry."""
    return Problem(
        503,
        "Service Unavailable",
        detail,
        type=problem_type("service-unavailable"),
        headers={"Retry-After": str(retry_after_s)},
    )


def problem_response(
    problem: Problem, *, instance: str | None = None, correlation_id: str | None = None
) -> JSONResponse:
    """Render a Problem as an `application/problem+json` response."""
    body = problem.to_dict(instance=instance)
    if correlation_id is not None:
        body.setdefault("correlation_id", correlation_id)
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


# --- correlation ids ----------------------------------------------------------


_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def get_correlation_id() -> str | None:
    """Return the correlation id of the request or message being handled, if any."""
    return current_correlation_id.get()


def new_correlation_id() -> str:
    """Return a fresh correlation id."""
    return str(uuid.uuid4())


def is_valid_correlation_id(value: str) -> bool:
    """Accept 1-128 chars of `[A-Za-z0-9._:-]`: safe in headers, logs and Kafka."""
    return _CORRELATION_ID.fullmatch(value) is not None


def _scope_state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def _correlation_id_for(scope: Scope) -> str | None:
    # The contextvar is reset when CorrelationIdMiddleware's block exits; the scope
    # state outlives it, which matters for a catch-all sitting outside it.
    return current_correlation_id.get() or _scope_state(scope).get("correlation_id")


class CorrelationIdMiddleware:
    """Take or mint a correlation id per request, bind it to logs, echo it back."""

    def __init__(self, app: ASGIApp, *, header_name: str = CORRELATION_ID_HEADER) -> None:
        self.app = app
        self.header_name = header_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = Headers(scope=scope).get(self.header_name)
        # An invalid id is replaced, not rejected: correlation is best effort and
        # must never be the reason a notice is refused.
        correlation_id = (
            supplied
            if supplied is not None and is_valid_correlation_id(supplied)
            else new_correlation_id()
        )
        request_id = new_correlation_id()
        state = _scope_state(scope)
        state["correlation_id"] = correlation_id
        state["request_id"] = request_id

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[self.header_name] = correlation_id
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        token = current_correlation_id.set(correlation_id)
        try:
            with structlog.contextvars.bound_contextvars(
                correlation_id=correlation_id, request_id=request_id
            ):
                await self.app(scope, receive, send_with_ids)
        finally:
            current_correlation_id.reset(token)


# --- body guard ---------------------------------------------------------------

_GUARDED_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Rejected(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.title)
        self.problem = problem


def _reject_constant(name: str) -> Any:
    # NaN/Infinity are not JSON (RFC 8259) and not storable as such.
    raise ValueError(f"non-standard JSON constant {name}")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys are resolved differently by different parsers (first vs last
    # wins); refusing them closes the gap between what we check and what we store.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate object key")
        result[key] = value
    return result


class BodyGuardMiddleware:
    """Reject oversized, non-JSON, non-UTF-8 or malformed bodies before any route runs."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        json_paths_prefixes: Sequence[str] = ("/v1/",),
    ) -> None:
        if max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.json_paths_prefixes = tuple(json_paths_prefixes)

    def _guards(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] in _GUARDED_METHODS
            and str(scope["path"]).startswith(self.json_paths_prefixes)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._guards(scope):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_checked_body(scope, receive)
        except _Rejected as rejected:
            response = problem_response(
                rejected.problem,
                instance=str(scope["path"]),
                correlation_id=_correlation_id_for(scope),
            )
            await response(scope, receive, send)
            return
        if body is None:
            return  # the client went away mid-body; nobody to answer

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            # After the body, only a disconnect can follow; wait for it as usual.
            return await receive()

        await self.app(scope, replay, send)

    async def _read_checked_body(self, scope: Scope, receive: Receive) -> bytes | None:
        headers = Headers(scope=scope)
        too_large = payload_too_large(
            f"The request body exceeds {self.max_body_bytes} bytes.",
            max_bytes=self.max_body_bytes,
        )
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _Rejected(bad_request("The Content-Length header is not a number."))
            # Refuse before reading a byte: the client said how much it will send.
            if int(declared) > self.max_body_bytes:
                raise _Rejected(too_large)

        content_type = headers.get("content-type")
        if content_type is not None and not _is_json_utf8(content_type):
            raise _Rejected(unsupported_media_type("Send the body as application/json (UTF-8)."))

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            # Counted per chunk so a chunked body without Content-Length is cut off
            # as soon as it crosses the limit, never buffered past it.
            if size > self.max_body_bytes:
                raise _Rejected(too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)

        if content_type is None:
            if body:
                raise _Rejected(
                    unsupported_media_type("Send the body as application/json (UTF-8).")
                )
            return body
        if not body:
            # An action endpoint may take no body at all; the route decides.
            return body
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _Rejected(bad_request("The request body is not valid UTF-8.")) from None
        try:
            json.loads(
                text,
                parse_constant=_reject_constant,
                object_pairs_hook=_reject_duplicate_keys,
            )
        except (ValueError, RecursionError):
            # The parser's message quotes the offending input; say only where.
            raise _Rejected(bad_request("The request body is not valid JSON.")) from None
        return body


def _is_json_utf8(content_type: str) -> bool:
    """Accept `application/json` with no charset or a UTF-8 charset."""
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in {
            "utf-8",
            "utf8",
        }:
            return False
    return True


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


# asyncpg's connection-loss errors, matched by name so this module neither needs
# asyncpg's (absent) type information nor imports it in SQLite-only processes.
_ASYNCPG_UNAVAILABLE = frozenset(
    {
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "TooManyConnectionsError",
    }
)


def _is_asyncpg_unavailable(exc: BaseException) -> bool:
    return any(
        cls.__module__.startswith("asyncpg") and cls.__name__ in _ASYNCPG_UNAVAILABLE
        for cls in type(exc).__mro__
    )


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
        if isinstance(item, unavailable) or _is_asyncpg_unavailable(item):
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


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    phrase = _phrase(exc.status_code)
    # A string detail was written by our code (or Starlette's) and is safe to show;
    # anything else may be structured input and is dropped.
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    problem = Problem(exc.status_code, phrase, detail, headers=exc.headers)
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
            response = self._response_for(scope, exc)
            await response(scope, receive, send)

    @staticmethod
    def _response_for(scope: Scope, exc: Exception) -> Response:
        correlation_id = _correlation_id_for(scope)
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


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error from `app` an RFC 9457 problem+json response."""
    handlers: dict[type[Exception], _Handler] = {
        Problem: _handle_problem,
        StarletteHTTPException: _handle_http_exception,
        RequestValidationError: _handle_validation_error,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
    app.add_middleware(_UnhandledErrorMiddleware)
