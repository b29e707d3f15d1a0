"""The HTTP API of rumor control: one module per area, each with its models and routes."""

from __future__ import annotations

from fastapi import APIRouter

from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.http import bulletins, feeds, receipts, rumors

__all__ = ["routers"]


def routers(deps: RumorControlDeps) -> list[APIRouter]:
    """Every router, in the order their paths are listed in the OpenAPI document."""
    return [
        rumors.routes(deps),
        bulletins.routes(deps),
        receipts.deliveries_routes(deps),
        receipts.routes(deps),
        feeds.routes(deps),
    ]
