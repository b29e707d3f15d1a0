"""Intake's HTTP edge: the notice routes, the ops audit check, and the problems its errors
become."""

from __future__ import annotations

from fastapi import APIRouter

from services.intake.deps import IntakeDeps
from services.intake.http.errors import install_error_handlers
from services.intake.http.notices import REPLAYED_HEADER, SUBMISSION_PATH, notices_router
from services.intake.http.ops import ops_router

__all__ = ["REPLAYED_HEADER", "SUBMISSION_PATH", "install_error_handlers", "routers"]


def routers(deps: IntakeDeps) -> list[APIRouter]:
    """Every APIRouter of intake, over the one `deps` of this process."""
    return [notices_router(deps), ops_router(deps)]
