"""Request middleware: correlation ids, and the guard that checks bodies before routes run."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# One correlation contextvar per process: the event envelope (cloudevents) reads
# the same object when it stamps `ce_correlationid` on outgoing events.
from services.common.cloudevents import current_correlation_id
from services.common.ids import new_id, new_ids
from services.common.problems.errors import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    Problem,
    bad_request,
    payload_too_large,
    problem_response,
    unsupported_media_type,
)

__all__ = [
    "BodyGuardMiddleware",
    "BodyRejected",
    "CorrelationIdMiddleware",
    "correlation_id_for",
    "get_correlation_id",
    "is_valid_correlation_id",
    "new_correlation_id",
    "replaying",
    "set_id_headers",
    "take_request_ids",
]

# --- correlation ids ----------------------------------------------------------


_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_REQUEST_ID_NAME = REQUEST_ID_HEADER.lower().encode("latin-1")


def get_correlation_id() -> str | None:
    """Return the correlation id of the request or message being handled, if any."""
    return current_correlation_id.get()


# A fresh correlation id: a random UUID's text, as `str(uuid.uuid4())`.
new_correlation_id = new_id


def is_valid_correlation_id(value: str) -> bool:
    """Accept 1-128 chars of `[A-Za-z0-9._:-]`: safe in headers, logs and Kafka."""
    return _CORRELATION_ID.fullmatch(value) is not None


def _first_header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower case), as `Headers(scope=scope).get` gives."""
    # Read straight from the raw list: a `Headers` object (a copy of the list, a lower-cased
    # key per look-up) on every request cost more than the look-up itself. Any other
    # iterable is made a list first, as `Headers` makes it, so layers inside can read it too.
    headers = scope["headers"]
    if type(headers) is not list:
        headers = scope["headers"] = list(headers)
    for key, value in headers:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _set_header(message: Message, name: bytes, value: str) -> None:
    """Set header `name` (lower case) on a response start, as `MutableHeaders` does: any
    earlier values replaced, the first in its place, else appended."""
    raw: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
    message["headers"] = raw
    encoded = value.encode("latin-1")
    found = [index for index, (key, _) in enumerate(raw) if key == name]
    if not found:
        raw.append((name, encoded))
        return
    for index in reversed(found[1:]):
        del raw[index]
    raw[found[0]] = (name, encoded)


def _scope_state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def correlation_id_for(scope: Scope) -> str | None:
    """The correlation id of the request in `scope`, even after the middleware exited."""
    # The contextvar is reset when CorrelationIdMiddleware's block exits; the scope
    # state outlives it, which matters for a catch-all sitting outside it.
    return current_correlation_id.get() or _scope_state(scope).get("correlation_id")


def take_request_ids(scope: Scope, raw_name: bytes) -> tuple[str, str]:
    """The request's correlation id (the client's, if valid) and a fresh request id.

    Both are kept in the scope's state, where layers outside the log context (the request's
    log line, a catch-all) read them.
    """
    supplied = _first_header(scope, raw_name)
    # A request needs a request id and most a correlation id too: one draw for both.
    fresh, request_id = new_ids()
    # An invalid id is replaced, not rejected: correlation is best effort and
    # must never be the reason a notice is refused.
    correlation_id = (
        supplied if supplied is not None and is_valid_correlation_id(supplied) else fresh
    )
    state = _scope_state(scope)
    state["correlation_id"] = correlation_id
    state["request_id"] = request_id
    return correlation_id, request_id


def set_id_headers(message: Message, raw_name: bytes, correlation_id: str, request_id: str) -> None:
    """Echo the request's ids on a response start, replacing any the app set itself."""
    _set_header(message, raw_name, correlation_id)
    _set_header(message, _REQUEST_ID_NAME, request_id)


class CorrelationIdMiddleware:
    """Take or mint a correlation id per request, bind it to logs, echo it back."""

    def __init__(self, app: ASGIApp, *, header_name: str = CORRELATION_ID_HEADER) -> None:
        self.app = app
        self.header_name = header_name
        self._raw_name = header_name.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_name = self._raw_name
        correlation_id, request_id = take_request_ids(scope, raw_name)

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                set_id_headers(message, raw_name, correlation_id, request_id)
            await send(message)

        token = current_correlation_id.set(correlation_id)
        # Bound, then reset by their tokens: what `bound_contextvars` leaves behind, without
        # its scan of every context variable of the context (`get_contextvars`) on the way in
        # and its unbind and rebind on the way out.
        bound = structlog.contextvars.bind_contextvars(
            correlation_id=correlation_id, request_id=request_id
        )
        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            structlog.contextvars.reset_contextvars(**bound)
            current_correlation_id.reset(token)


# --- body guard ---------------------------------------------------------------

_GUARDED_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyRejected(Exception):
    """A body the guard refuses, with the problem to answer."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.title)
        self.problem = problem


def _reject_constant(name: str) -> Any:
    # NaN/Infinity are not JSON (RFC 8259) and not storable as such.
    raise ValueError(f"non-standard JSON constant {name}")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys are resolved differently by different parsers (first vs last
    # wins); refusing them closes the gap between what we check and what we store.
    # The keys arrive decoded (`"a"` and `"\u0061"` are one key here): a repeat leaves the
    # dict shorter than its pairs. Built in C, where a loop over the pairs was Python.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate object key")
    return result


# Built once: `json.loads` with hooks builds a new decoder (and its scanner) on every call,
# and the guard parses every JSON body the API receives.
_STRICT_JSON = json.JSONDecoder(
    parse_constant=_reject_constant, object_pairs_hook=_reject_duplicate_keys
)


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

    def _too_large(self) -> Problem:
        # Built only when a body is refused: on every request it was a measurable cost.
        return payload_too_large(
            f"The request body exceeds {self.max_body_bytes} bytes.",
            max_bytes=self.max_body_bytes,
        )

    def guards(self, scope: Scope) -> bool:
        """Whether a request's body is checked: a JSON method on the API's paths."""
        return (
            scope["type"] == "http"
            and scope["method"] in _GUARDED_METHODS
            and str(scope["path"]).startswith(self.json_paths_prefixes)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.guards(scope):
            await self.app(scope, receive, send)
            return
        try:
            body = await self.read_checked_body(scope, receive)
        except BodyRejected as rejected:
            response = problem_response(
                rejected.problem,
                instance=str(scope["path"]),
                correlation_id=correlation_id_for(scope),
            )
            await response(scope, receive, send)
            return
        if body is None:
            return  # the client went away mid-body; nobody to answer

        await self.app(scope, replaying(body, receive), send)

    async def read_checked_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body if it passes (None: the client left mid-body); else BodyRejected."""
        declared = _first_header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BodyRejected(bad_request("The Content-Length header is not a number."))
            # Refuse before reading a byte: the client said how much it will send.
            if int(declared) > self.max_body_bytes:
                raise BodyRejected(self._too_large())

        content_type = _first_header(scope, b"content-type")
        if content_type is not None and not _is_json_utf8(content_type):
            raise BodyRejected(unsupported_media_type("Send the body as application/json (UTF-8)."))

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
                raise BodyRejected(self._too_large())
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)

        if content_type is None:
            if body:
                raise BodyRejected(
                    unsupported_media_type("Send the body as application/json (UTF-8).")
                )
            return body
        if not body:
            # An action endpoint may take no body at all; the route decides.
            return body
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyRejected(bad_request("The request body is not valid UTF-8.")) from None
        try:
            _STRICT_JSON.decode(text)
        except (ValueError, RecursionError):
            # The parser's message quotes the offending input; say only where.
            raise BodyRejected(bad_request("The request body is not valid JSON.")) from None
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


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` whole once, then what `receive` gives."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, only a disconnect can follow; wait for it as usual.
        return await receive()

    return replay
