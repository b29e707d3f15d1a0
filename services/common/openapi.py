"""OpenAPI documents that tell the truth about errors, derived rather than written by hand.

Every error a service sends is RFC 9457 `application/problem+json` (services/common/problems),
so every error status an operation can answer is documented with that media type and one
`Problem` schema. Which statuses an operation can answer is derived from the route itself,
so the document stays true as routes change:

| status | when |
|---|---|
| 401 | the route depends on a bearer token (`current_principal`) |
| 403 | the token's role is checked (`require_roles`); the roles admitted are listed in `x-roles` |
| 404 | the path has a parameter naming a resource |
| 400, 413, 415 | a POST/PUT/PATCH under a body-guarded prefix (malformed JSON, size, media type) |
| 422 | the operation takes any parameter or body (FastAPI's validation, sent as a problem) |
| 503 | any operation that reads the database (all but the `internal` tag's own) |

On top of these, what a route declares in `responses=` and what the service declares for an
operation (`declared={"POST /v1/x/{id}/approve": {409}}`, e.g. a state conflict raised deep in
a use case) are documented the same way. A declared operation that no longer exists fails
loudly, so a declaration cannot silently go stale.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping
from copy import deepcopy
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from services.common.auth import current_principal
from services.common.problems import PROBLEM_JSON

__all__ = ["PROBLEM_SCHEMA", "install_openapi", "operation_statuses"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. Never echoes request input.",
    "type": "object",
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "correlation_id": {"type": "string"},
        "reason_code": {"type": "string", "description": "A machine-readable reason."},
        "errors": {
            "type": "array",
            "description": "What was refused and why, never the submitted value: schema "
            "validation gives `loc`, `msg` and `type`; a service's own rules `path` and `message`.",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                    "path": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status"],
    "additionalProperties": True,
}

# Headers some problems carry (RFC 6750 challenge; when to retry).
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer challenge"}},
    503: {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait"}},
}


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def _allowed_roles(route: RouteContext) -> tuple[str, ...] | None:
    dependant: Dependant = route.dependant
    for sub in _dependencies(dependant):
        roles = getattr(sub.call, "allowed_roles", None)
        if roles is not None:
            return tuple(str(role) for role in roles)
    return None


def operation_statuses(
    route: RouteContext, method: str, *, body_prefixes: tuple[str, ...] = ("/v1/",)
) -> set[int]:
    """The error statuses `route` can answer for `method`, as derived from the route."""
    statuses: set[int] = set()
    dependant: Dependant = route.dependant
    if any(sub.call is current_principal for sub in _dependencies(dependant)):
        statuses.add(401)
    if _allowed_roles(route) is not None:
        statuses.add(403)
    if dependant.path_params:
        statuses.add(404)
    if method in _BODY_METHODS and str(route.path_format).startswith(body_prefixes):
        statuses.update((400, 413, 415))
    has_input = (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
    )
    if has_input:
        statuses.add(422)
    if "internal" not in (route.tags or ()):
        statuses.add(503)
    statuses.update(int(code) for code in route.responses if str(code).isdigit())
    return {status for status in statuses if status >= 400}


def _problem_response(status: int, existing: Mapping[str, Any] | None) -> dict[str, Any]:
    description = (existing or {}).get("description") or HTTPStatus(status).phrase
    if status == 422 and description == "Validation Error":
        description = "The request does not match the schema; `errors` says where and why."
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": dict(_PROBLEM_REF)}},
    }
    if status in _HEADERS:
        response["headers"] = deepcopy(_HEADERS[status])
    return response


def _document_route(
    paths: dict[str, Any], route: RouteContext, declared: Mapping[str, Collection[int]]
) -> set[str]:
    used: set[str] = set()
    roles = _allowed_roles(route)
    path = str(route.path_format)
    for method in sorted((route.methods or set()) - {"HEAD"}):
        operation = paths.get(path, {}).get(method.lower())
        if operation is None:
            continue
        key = f"{method} {path}"
        statuses = operation_statuses(route, method) | set(declared.get(key, ()))
        used.add(key)
        responses: dict[str, Any] = operation.setdefault("responses", {})
        for status in sorted(statuses):
            responses[str(status)] = _problem_response(status, responses.get(str(status)))
        if roles is not None:
            operation["x-roles"] = list(roles)
            forbidden = responses["403"]
            forbidden["description"] = f"Only these roles may call it: {', '.join(roles)}."
    return used


def _truthful(app: FastAPI, base: dict[str, Any], declared: Mapping[str, Collection[int]]) -> Any:
    schema = deepcopy(base)
    paths: dict[str, Any] = schema.get("paths", {})
    used: set[str] = set()
    # FastAPI keeps included routers nested; this walks them as its own generator does.
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            used |= _document_route(paths, route, declared)
    stale = sorted(set(declared) - used)
    if stale:
        raise ValueError(f"declared problems for operations that do not exist: {stale}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = deepcopy(PROBLEM_SCHEMA)
    # FastAPI's own validation models describe a body no Aviso service sends.
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    if "/HTTPValidationError" in json.dumps(schema):
        raise ValueError("a response still refers to FastAPI's validation model")
    return schema


def install_openapi(app: FastAPI, *, declared: Mapping[str, Collection[int]] = {}) -> None:
    """Make `app.openapi()` document every problem each operation can answer."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    cache: dict[int, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        base = generate()  # FastAPI's, cached by FastAPI until the routes change
        if id(base) not in cache:
            cache.clear()
            cache[id(base)] = _truthful(app, base, declared)
        return cache[id(base)]

    app.openapi = openapi  # type: ignore[method-assign]
