"""`POST /v1/notices` without FastAPI's per-request solving when the request is plain.

A plain submission (a bearer token of a role that may submit, a JSON body that is a valid
`NoticeSubmission`, neither Idempotency-Key nor signature, where signatures are optional:
notices.py uses this route only then) is by far the most common
request intake answers. FastAPI answers it by solving the route's five dependencies
(the role, the principal, the bearer scheme, the signature, the header), validating the
body and the response, ~300 Python calls a request (profiled, eleventh round). Here the
route first tries that request's few checks directly, with the same functions the
dependencies call, and calls the endpoint with what they return.

Anything else goes through FastAPI's own handler, untouched: a missing or bad token, a
role that may not submit, a body that does not parse or validate, a key or a signature
(whose replay check must run once). So every problem answer is the one FastAPI gives,
byte for byte, and the OpenAPI document is built from the same route as before: only the
route's handler is different, not its declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine
from typing import Any, cast

import fastapi.routing
from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param

from services.common.auth import Principal, Role, current_principal
from services.common.signing import SIGNATURE_HEADER
from services.intake.notices.commands import NoticeSubmission
from services.intake.permissions import Action, roles_for

__all__ = [
    "REPRODUCED_DEPENDENCIES",
    "PlainAnswer",
    "PlainSubmissionRoute",
    "dependency_names",
    "plain_submission",
]

_Handler = Callable[[Request], Coroutine[Any, Any, Response]]
# A plain submission's answer, or None where the request is not plain (FastAPI's to answer).
PlainAnswer = Callable[[Request], Coroutine[Any, Any, Response | None]]
_KEY_HEADER = "idempotency-key"
_TRIED = "aviso.plain_submission_tried"
_SUBMITTERS = frozenset(roles_for(Action.SUBMIT))

# The route's dependencies that `plain_submission` does itself: the role, the principal,
# the bearer scheme, and the signature (absent, so None). A route that depends on anything
# else keeps FastAPI's handler for every request, so a check added later is never skipped.
REPRODUCED_DEPENDENCIES = frozenset(
    {
        "require_roles.<locals>.principal_with_role",
        "current_principal",
        "HTTPBearer",
        "_signature.<locals>.signed",
    }
)


def dependency_names(dependant: Dependant) -> frozenset[str]:
    """Every dependency of a route, however deep, by its callable's qualified name."""
    names: set[str] = set()
    waiting = list(dependant.dependencies)
    while waiting:
        sub = waiting.pop()
        call = sub.call
        names.add(getattr(call, "__qualname__", None) or type(call).__qualname__)
        waiting.extend(sub.dependencies)
    return frozenset(names)


async def plain_submission(
    request: Request, allowed: Collection[Role] = _SUBMITTERS
) -> tuple[Principal, NoticeSubmission] | None:
    """The caller and the body of a plain submission; None for any other request.

    None is never an answer: the request then goes through FastAPI's handler, which
    answers it (a 401, 403, 422, 400, or a keyed or signed submission).
    """
    headers = request.headers
    if SIGNATURE_HEADER in headers or _KEY_HEADER in headers:
        return None
    content_type = headers.get("content-type")
    if content_type is None or content_type.partition(";")[0].strip().lower() != (
        "application/json"
    ):
        return None
    # What the route's HTTPBearer dependency reads, then its principal dependency itself.
    scheme, token = get_authorization_scheme_param(headers.get("authorization"))
    if not token or scheme.lower() != "bearer":
        return None
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
    try:
        principal = await current_principal(request, credentials)
    except HTTPException:
        return None
    if principal.role not in allowed:
        return None
    try:
        # Kept on the request: the fallback reads the same bytes again. Parsed and
        # validated in one pass (pydantic's JSON mode, ~30 % less than `json.loads` then
        # `model_validate` as FastAPI does). Where both accept a body they give the same
        # model (a test holds them to it); where they differ, JSON mode refuses (a lone
        # surrogate escape, a BOM, a UTF-16 body) and FastAPI's handler answers.
        body = await request.body()
        submission = NoticeSubmission.model_validate_json(body)
    except Exception:  # a failed read, parse or validation is FastAPI's to answer
        return None
    return principal, submission


class PlainSubmissionRoute(APIRoute):
    """The submit route: a plain submission answered directly, any other request by FastAPI.

    Its endpoint is the route's own (`submit_notice(principal, *, signed, body, response,
    idempotency_key)`), called with the values the dependencies would have given; the
    answer is built as FastAPI's handler builds it (status, headers the endpoint set, the
    response model validated and dumped to JSON once).

    `plain_answer` is that answer on its own, for `PlainSubmissionLayer` (the route reached
    without Starlette's routing): set only while every handler FastAPI built for the route
    (its own and one per router that includes it) answers plain submissions.
    """

    _plain_builds: list[PlainAnswer | None]

    @property
    def plain_answer(self) -> PlainAnswer | None:
        """The plain answer of every build, or None where any build has none."""
        builds = getattr(self, "_plain_builds", [])
        return builds[-1] if builds and all(builds) else None

    def get_route_handler(self) -> _Handler:
        full = super().get_route_handler()
        answer = self._plain_answer()
        builds = getattr(self, "_plain_builds", None)
        if builds is None:
            builds = self._plain_builds = []
        builds.append(answer)
        if answer is None:
            return full
        plain = answer

        async def handler(request: Request) -> Response:
            response = await plain(request)
            return response if response is not None else await full(request)

        return handler

    def _plain_answer(self) -> PlainAnswer | None:
        """A plain submission's answer (None for any other request); None where the route
        depends on something `plain_submission` does not do itself."""
        if dependency_names(_effective_dependant(self)) != REPRODUCED_DEPENDENCIES:
            return None
        endpoint = self.endpoint
        response_field = self.response_field
        default_status = self.status_code
        if response_field is None:
            return None

        async def answer(request: Request) -> Response | None:
            if request.app.dependency_overrides:  # stand-ins are FastAPI's to resolve
                return None
            # Tried once a request: a request the submission layer found not plain is not
            # checked again (its token looked up again) by the route's handler.
            if request.scope.get(_TRIED):
                return None
            request.scope[_TRIED] = True
            plain = await plain_submission(request)
            if plain is None:
                return None
            principal, submission = plain
            # FastAPI's sub-response: the endpoint sets its status and headers on it.
            sub_response = _bare_response(None, [])
            result = await endpoint(
                principal,
                signed=None,
                body=submission,
                response=sub_response,
                idempotency_key=None,
            )
            value, errors = response_field.validate(result, {}, loc=("response",))
            if errors:
                raise ResponseValidationError(errors=errors, body=result)
            return _json_answer(
                response_field.serialize_json(value, by_alias=True),
                sub_response.status_code or default_status or 200,
                sub_response.raw_headers,
            )

        return answer


def _bare_response(status_code: int | None, raw_headers: list[tuple[bytes, bytes]]) -> Response:
    """A Response with exactly these headers and no body, its header building skipped.

    `Response()` renders and measures an empty body and builds its headers (then FastAPI's
    sub-response deletes the length again): work a request's answer redid twice.
    """
    response = Response.__new__(Response)
    response.status_code = status_code  # type: ignore[assignment]  # None: the endpoint's to set
    response.background = None
    response.body = b""
    response.raw_headers = raw_headers
    return response


_JSON = b"application/json"
_NO_LENGTH = frozenset({204, 304})


def _json_answer(body: bytes, status_code: int, extra: list[tuple[bytes, bytes]]) -> Response:
    """`Response(body, status_code, media_type="application/json")` with `extra` appended.

    The same raw headers in the same order (length, type, then the endpoint's), built as
    bytes at once instead of through `init_headers` and a `MutableHeaders` view.
    """
    if status_code < 200 or status_code in _NO_LENGTH:  # never here: 200 and 201 only
        response = Response(body, status_code=status_code, media_type="application/json")
        response.raw_headers.extend(extra)
        return response
    head = [(b"content-length", str(len(body)).encode("latin-1")), (b"content-type", _JSON)]
    response = _bare_response(status_code, head + extra)
    response.body = body
    return response


def _effective_dependant(route: APIRoute) -> Dependant:
    """The dependencies FastAPI solves for the route: with an including router's own.

    FastAPI 0.163 builds an included route's handler under a context that holds the
    route's effective dependencies (the router's `include_router(dependencies=...)` too);
    versions without it copied the route with them, so `route.dependant` is right there.
    """
    context_var = getattr(fastapi.routing, "_effective_route_context_var", None)
    context = context_var.get() if context_var is not None else None
    if context is not None and getattr(context, "original_route", None) is route:
        return cast(Dependant, context.dependant)
    return route.dependant
