"""What every rumor_control route shares: the caller as an actor, role dependencies, path
parameters, and use-case refusals as RFC 9457 problems with a `reason_code`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path
from pydantic import BaseModel, ConfigDict

from services.common.auth import Principal
from services.common.logging import get_logger
from services.common.problems import Problem, conflict, forbidden, not_found, problem_type
from services.rumor_control.domain import (
    Actor,
    AuditEntry,
    InvalidInput,
    NotFound,
    VettingError,
    person_id,
)
from services.rumor_control.metrics import VETTING_REFUSALS
from services.rumor_control.permissions import Action, allowed

__all__ = [
    "Assessor",
    "BulletinId",
    "BulletinReader",
    "In",
    "LedgerReader",
    "Reporter",
    "RumorId",
    "TimelineEntry",
    "Vetter",
    "actor_of",
    "no_such_thing",
    "problems",
]

log = get_logger(__name__)

Reporter = Annotated[Principal, Depends(allowed(Action.REPORT_RUMOR))]
LedgerReader = Annotated[Principal, Depends(allowed(Action.READ_LEDGER))]
Assessor = Annotated[Principal, Depends(allowed(Action.ASSESS_RUMOR))]
BulletinReader = Annotated[Principal, Depends(allowed(Action.READ_BULLETINS))]
Vetter = Annotated[Principal, Depends(allowed(Action.VET_BULLETIN))]
BulletinId = Annotated[uuid.UUID, Path(description="The bulletin's id.")]
RumorId = Annotated[uuid.UUID, Path(description="The rumor's id.")]


class In(BaseModel):
    """Request bodies refuse fields they do not know."""

    model_config = ConfigDict(extra="forbid")


def actor_of(principal: Principal) -> Actor:
    """The person behind a token, as the audit log names them."""
    return Actor(person_id(principal.subject), principal.name, principal.role.value)


def no_such_thing() -> Problem:
    """The one 404 of rumor control (it does not say which kind of thing is missing)."""
    return not_found("No such rumor or bulletin.")


@contextmanager
def problems() -> Iterator[None]:
    """Use-case exceptions as problem+json (reason codes, never request text)."""
    try:
        yield
    except NotFound:
        raise no_such_thing() from None
    except VettingError as exc:
        VETTING_REFUSALS.labels(exc.code).inc()
        log.info("bulletin.vetting_refused", reason_code=exc.code)
        if exc.forbidden:
            raise forbidden(exc.detail, reason_code=exc.code) from None
        raise conflict(exc.detail, reason_code=exc.code) from None
    except InvalidInput as exc:
        raise Problem(
            422,
            "Unprocessable Content",
            exc.detail,
            type=problem_type("invalid-input"),
            extensions={"reason_code": exc.code},
        ) from None


class TimelineEntry(BaseModel):
    """One step of a rumor's or bulletin's history."""

    at: datetime
    action: str
    version: int | None
    actor_id: uuid.UUID | None
    actor_name: str | None
    actor_role: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry) -> TimelineEntry:
        """From an audit log row."""
        return cls(
            at=entry.at,
            action=entry.action,
            version=entry.version,
            actor_id=entry.actor_id,
            actor_name=entry.actor_name,
            actor_role=entry.actor_role,
            detail=dict(entry.detail),
        )
