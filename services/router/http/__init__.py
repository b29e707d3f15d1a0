"""Router's HTTP edge: one module per area, its models and its thin routes together."""

from __future__ import annotations

from fastapi import APIRouter

from services.router.deps import RouterDeps
from services.router.http.acknowledgement import ack_link_router
from services.router.http.alerts import alerts_router
from services.router.http.directory import directory_router
from services.router.http.ops import ops_router
from services.router.http.sms import sms_router

__all__ = [
    "PROBLEMS",
    "ack_link_router",
    "alerts_router",
    "directory_router",
    "ops_router",
    "routers",
    "sms_router",
]

# Error statuses the routes raise themselves and their signatures cannot show; everything
# derivable (auth, ids, validation, bodies, database) is added by services/common/openapi.py.
PROBLEMS: dict[str, set[int]] = {
    "GET /v1/alerts": {400},  # an unknown state
    "POST /ack": {400, 413},  # the link's form: too many fields, not JSON or UTF-8, too large
    "PUT /v1/directory": {400, 412},  # a malformed If-Match; an If-Match no longer current
    "GET /sms/reports": {400, 403, 503},  # malformed, not signed, the send not yet recorded
    "GET /sms/replies": {400, 403},  # malformed, without the shared secret
}


def routers(deps: RouterDeps) -> list[APIRouter]:
    """Every router route, in the order the OpenAPI document lists them."""
    return [
        alerts_router(deps),
        directory_router(deps),
        ops_router(deps),
        ack_link_router(deps),
        sms_router(deps),
    ]
