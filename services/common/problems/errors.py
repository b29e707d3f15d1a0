"""RFC 9457 problem details: the `Problem` exception, its common kinds, its response."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

__all__ = [
    "CORRELATION_ID_HEADER",
    "PROBLEM_JSON",
    "PROBLEM_TYPE_BASE",
    "REQUEST_ID_HEADER",
    "Problem",
    "bad_request",
    "conflict",
    "forbidden",
    "not_found",
    "payload_too_large",
    "phrase",
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


def problem_type(slug: str) -> str:
    """Return the type URI for an Aviso problem slug (e.g. `notice-conflict`)."""
    return f"{PROBLEM_TYPE_BASE}{slug}"


def phrase(status: int) -> str:
    """The HTTP reason phrase of `status` (`Error` for a code HTTPStatus lacks)."""
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
        self.title = title or phrase(status)
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
