"""The HTTP API of rumor control: one module per area, each with its models and routes."""

from __future__ import annotations

from fastapi import APIRouter

from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.http import bulletins, feeds, receipts, rumors, sms

__all__ = ["PROBLEMS", "routers"]

# Error statuses raised in use cases, which the routes' signatures cannot show; everything
# derivable (auth, ids, validation, bodies, database) is added by services/common/openapi.py.
_VETTING = {409}  # a vetting step the bulletin's state does not allow (`reason_code` says why)
PROBLEMS: dict[str, set[int]] = {
    "PUT /v1/bulletins/{bulletin_id}/texts/{language}": _VETTING,
    "POST /v1/bulletins/{bulletin_id}/signoff": _VETTING,
    "POST /v1/bulletins/{bulletin_id}/approve": _VETTING,
    "POST /v1/bulletins/{bulletin_id}/reject": _VETTING,
    "POST /v1/bulletins/{bulletin_id}/retract": _VETTING,
    "GET /v1/receipts": {403, 404},  # a forged, expired or foreign link; an unknown bulletin
    "GET /sms/keywords": {400, 403},  # malformed, without the shared secret
    "GET /sms/reports": {400, 403, 503},  # malformed, forged, the send not yet recorded
}


def routers(deps: RumorControlDeps) -> list[APIRouter]:
    """Every router, in the order their paths are listed in the OpenAPI document."""
    return [
        rumors.routes(deps),
        bulletins.routes(deps),
        receipts.deliveries_routes(deps),
        receipts.routes(deps),
        feeds.routes(deps),
        sms.routes(deps),
    ]
