"""`/v1/ops/dead-letters`: the dead-letter topic for operations staff, read and replayed.

Router hosts it because it is the service ops already read (alerts, timelines); the topic
is every service's. A letter shows where it came from and why it failed, never its
payload (`aviso dlq list` shows the same). A replay republishes the original records to
their original topics with their original message ids: consumer groups that applied one
skip it through their inbox, and the group that failed applies it now.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from services.common.auth import Principal
from services.common.dlq import DeadLetter
from services.common.logging import get_logger
from services.common.problems import not_found
from services.router.deps import RouterDeps
from services.router.permissions import Action, allowed

__all__ = ["DeadLetterList", "DeadLetterView", "ReplayRequest", "ReplayResult", "ops_router"]

log = get_logger(__name__)
_ops = allowed(Action.OPERATE_DLQ)
Operator = Annotated[Principal, Depends(_ops)]


class DeadLetterView(BaseModel):
    """One dead letter: where it came from, who gave up, and why (no payload)."""

    model_config = ConfigDict(frozen=True)

    dead_letter_id: uuid.UUID
    failed_at: datetime
    original_topic: str
    original_partition: int
    original_offset: int
    consumer_group: str
    attempts: int
    error_type: str
    error_message: str = Field(description="Redacted by the consumer that gave up.")


class DeadLetterList(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[DeadLetterView]


class ReplayRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ids: list[uuid.UUID] = Field(min_length=1, max_length=500)


class ReplayResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    replayed: list[uuid.UUID]


def _view(entry: DeadLetter) -> DeadLetterView:
    letter = entry.letter
    return DeadLetterView(
        dead_letter_id=letter.dead_letter_id,
        failed_at=letter.failed_at,
        original_topic=letter.original_topic,
        original_partition=letter.original_partition,
        original_offset=letter.original_offset,
        consumer_group=letter.consumer_group,
        attempts=letter.attempts,
        error_type=letter.error_type,
        error_message=letter.error_message[:500],
    )


def ops_router(deps: RouterDeps) -> APIRouter:
    """The dead-letter routes."""
    router = APIRouter(prefix="/v1/ops/dead-letters", tags=["ops"])
    _list_route(router, deps)
    _replay_route(router, deps)
    return router


def _list_route(router: APIRouter, deps: RouterDeps) -> None:
    @router.get("", summary="Dead letters on the DLQ topic, newest first (no payloads)")
    async def list_dead_letters(_principal: Operator) -> DeadLetterList:
        letters = await deps.dlq().list()
        letters.sort(key=lambda e: e.letter.failed_at, reverse=True)
        return DeadLetterList(items=[_view(entry) for entry in letters])


def _replay_route(router: APIRouter, deps: RouterDeps) -> None:
    @router.post(
        "/replay",
        summary="Republish dead letters to their original topics (all named, or none)",
        responses={404: {"description": "An id is not on the DLQ; nothing was replayed"}},
    )
    async def replay_dead_letters(body: ReplayRequest, principal: Operator) -> ReplayResult:
        done = await deps.dlq().replay(body.ids)
        if done.missing:
            raise not_found(
                "Not on the DLQ; nothing was replayed.", missing=[str(i) for i in done.missing]
            )
        # Who replayed what: the audit of an operator's action on other services' input.
        log.info(
            "dlq.replayed",
            count=len(done.replayed),
            dead_letter_ids=[str(i) for i in done.replayed],
            by=principal.name,
        )
        return ReplayResult(replayed=list(done.replayed))
