"""`GET /v1/ops/audit`: the audit chain's verification result, for operations staff.

The same check as `aviso audit verify` (every link recomputed with the audit key, in one
read transaction), answered as numbers and hashes: no entry's content, so ops learn
whether the log was altered without reading who read what.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from services.common.auth import Principal, require_roles
from services.common.logging import get_logger
from services.intake.audit import verify_chain
from services.intake.deps import IntakeDeps
from services.intake.permissions import Action, roles_for

__all__ = ["AuditVerification", "ops_router"]

log = get_logger(__name__)
Operator = Annotated[Principal, Depends(require_roles(*roles_for(Action.VERIFY_AUDIT)))]


class AuditVerification(BaseModel):
    """The outcome of one walk over the audit chain."""

    model_config = ConfigDict(frozen=True)

    intact: bool
    entries: int = Field(description="Entries verified (up to the first broken one).")
    head_hash: str
    broken_at: int | None = Field(description="The first entry whose link is broken.")
    problem: str | None
    pending: int = Field(description="Entries written but not sealed yet (not verified).")
    unkeyed: int = Field(description="Entries sealed before the chain was keyed (SHA-256).")
    verified_at: datetime


def ops_router(deps: IntakeDeps) -> APIRouter:
    """The audit verification route."""
    router = APIRouter(prefix="/v1/ops", tags=["ops"])

    @router.get("/audit", summary="Verify the audit log's keyed hash chain now")
    async def verify_audit(principal: Operator) -> AuditVerification:
        async with deps.unit_of_work() as uow:
            report = await verify_chain(uow.session, key=deps.audit_key)
        log.info(
            "audit.verified",
            intact=report.intact,
            entries=report.entries,
            broken_at=report.broken_at,
            by=principal.name,
        )
        return AuditVerification(
            intact=report.intact,
            entries=report.entries,
            head_hash=report.head_hash,
            broken_at=report.broken_at,
            problem=report.problem,
            pending=report.pending,
            unkeyed=report.unkeyed,
            verified_at=deps.clock(),
        )

    return router
