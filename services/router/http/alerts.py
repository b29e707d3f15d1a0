"""`GET /v1/alerts`, `GET /v1/alerts/{id}`, `GET /v1/alerts/{id}/timeline`: views and routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from schemas.base import Status
from services.common.auth import Principal
from services.common.bounds import MAX_OFFSET, MAX_PAGE_SIZE
from services.common.problems import not_found
from services.router import alerting
from services.router.deps import RouterDeps
from services.router.domain import (
    ACKNOWLEDGEABLE_STATES,
    AlertRecord,
    ChannelKind,
    TimelineEntry,
)
from services.router.errors import AlertNotFound
from services.router.http.acknowledgement import add_ack_route
from services.router.messages import format_window
from services.router.permissions import Action, allowed, visible_detail

__all__ = ["AlertList", "AlertView", "TimelineView", "alert_view", "alerts_router"]

# What `GET /v1/alerts?state=` accepts: a state, or `open` (every state still awaiting an
# acknowledgement). An enum in the OpenAPI document; anything else is a 422 problem.
StateFilter = Literal[
    "triggered",
    "delivered",
    "escalated",
    "acknowledged",
    "unacknowledged_exhausted",
    "resolved",
    "open",
]
_readers = allowed(Action.READ_ALERTS)


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class StepView(_View):
    step: int
    person_id: uuid.UUID
    wait_s: float
    via_spoc: bool


class RecipientView(_View):
    person_id: uuid.UUID
    channels: tuple[ChannelKind, ...] = Field(description="Channel kinds only, never addresses.")


class SnapshotView(_View):
    """Who the alert reaches, frozen when it opened (later directory edits do not apply)."""

    directory_version: int
    taken_at: datetime
    spoc_id: uuid.UUID
    designated_spoc_id: uuid.UUID
    delegated: bool
    steps: tuple[StepView, ...]
    repeat: int
    recipients: tuple[RecipientView, ...]


class AlertView(_View):
    """An alert: state, escalation position and releasable notice content."""

    id: uuid.UUID
    notice_id: uuid.UUID
    notice_version: int
    status: Status
    drill: bool
    state: str
    needs_acknowledgement: bool
    urgency: str
    area: str
    summary: str
    operation_type: str
    window_start: datetime
    window_end: datetime
    window: str
    step: int
    repeat: int
    escalation_count: int
    next_escalation_at: datetime | None
    triggered_at: datetime
    version_triggered_at: datetime
    acknowledged_version: int | None
    acknowledged_by: uuid.UUID | None
    acknowledged_at: datetime | None
    ack_method: str | None
    exhausted_at: datetime | None
    resolved_at: datetime | None
    resolution: str | None
    expires_at: datetime
    snapshot: SnapshotView
    links: dict[str, str]


class AlertList(_View):
    items: tuple[AlertView, ...]
    limit: int
    offset: int


class TimelineEntryView(_View):
    at: datetime
    kind: str
    notice_version: int
    step: int | None
    repeat: int | None
    recipient_id: uuid.UUID | None
    channel: str | None
    method: str | None
    delivery_id: uuid.UUID | None
    detail: dict[str, Any]


class TimelineView(_View):
    alert_id: uuid.UUID
    notice_id: uuid.UUID
    state: str
    entries: tuple[TimelineEntryView, ...]


def _snapshot_view(alert: AlertRecord) -> SnapshotView:
    snapshot = alert.snapshot
    return SnapshotView(
        directory_version=snapshot.directory_version,
        taken_at=snapshot.taken_at,
        spoc_id=snapshot.spoc_id,
        designated_spoc_id=snapshot.designated_spoc_id,
        delegated=snapshot.delegated,
        steps=tuple(
            StepView(step=i, person_id=s.person_id, wait_s=s.wait_s, via_spoc=s.via_spoc)
            for i, s in enumerate(snapshot.policy.steps)
        ),
        repeat=snapshot.policy.repeat,
        recipients=tuple(
            RecipientView(person_id=r.person_id, channels=r.channels.kinds())
            for r in snapshot.recipients
        ),
    )


def alert_view(deps: RouterDeps, alert: AlertRecord) -> AlertView:
    """An alert as the API shows it (releasable content, channel kinds but no addresses)."""
    content = alert.content
    return AlertView(
        id=alert.id,
        notice_id=alert.notice_id,
        notice_version=alert.notice_version,
        status=alert.status,
        drill=alert.drill,
        state=alert.state,
        needs_acknowledgement=alert.state in ACKNOWLEDGEABLE_STATES,
        urgency=alert.urgency,
        area=content.area,
        summary=content.summary,
        operation_type=content.operation_type,
        window_start=content.window_start,
        window_end=content.window_end,
        window=format_window(content.window_start, content.window_end, deps.timezone),
        step=alert.step,
        repeat=alert.repeat,
        escalation_count=alert.escalation_count,
        next_escalation_at=alert.next_fire_at,
        triggered_at=alert.triggered_at,
        version_triggered_at=alert.version_triggered_at,
        acknowledged_version=alert.acknowledged_version,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=alert.acknowledged_at,
        ack_method=alert.ack_method,
        exhausted_at=alert.exhausted_at,
        resolved_at=alert.resolved_at,
        resolution=alert.resolution,
        expires_at=alert.expires_at,
        snapshot=_snapshot_view(alert),
        links={
            "self": f"/v1/alerts/{alert.id}",
            "timeline": f"/v1/alerts/{alert.id}/timeline",
            "ack": f"/v1/alerts/{alert.id}/ack",
            "notice": deps.notice_url(alert.notice_id),
        },
    )


def _timeline_entry(entry: TimelineEntry, principal: Principal) -> TimelineEntryView:
    return TimelineEntryView(
        at=entry.at,
        kind=entry.kind,
        notice_version=entry.notice_version,
        step=entry.step,
        repeat=entry.repeat,
        recipient_id=entry.recipient_id,
        channel=entry.channel,
        method=entry.method,
        delivery_id=entry.delivery_id,
        detail=visible_detail(entry.detail, principal.role),
    )


def _states(values: list[StateFilter] | None) -> list[str]:
    states: list[str] = []
    for value in values or ():
        if value == "open":
            states.extend(sorted(ACKNOWLEDGEABLE_STATES))
        else:
            states.append(value)
    return states


def alerts_router(deps: RouterDeps) -> APIRouter:
    """Alerts: list, read, acknowledge, timeline."""
    router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
    _list_route(router, deps)
    _read_route(router, deps)
    # Registered here, between reading and the timeline, so the OpenAPI keeps its order.
    add_ack_route(router, deps)
    _timeline_route(router, deps)
    return router


def _list_route(router: APIRouter, deps: RouterDeps) -> None:
    @router.get(
        "",
        summary="List alerts, newest first, optionally by state or notice",
        responses={422: {"description": "A malformed filter (an unknown state, a notice_id "
                         "that is not a UUID), as problem+json"}},
    )  # fmt: skip
    async def list_alerts(
        _principal: Annotated[Principal, Depends(_readers)],
        state: Annotated[
            list[StateFilter] | None,
            Query(description="Repeatable; a state, or `open` for those awaiting an ack."),
        ] = None,
        notice_id: Annotated[
            uuid.UUID | None,
            Query(description="Only the alert of this notice (the id intake returned)."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> AlertList:
        states = _states(state)
        async with deps.unit_of_work() as uow:
            alerts = await alerting.list_alerts(
                uow, states=states, limit=limit, offset=offset, notice_id=notice_id
            )
        return AlertList(
            items=tuple(alert_view(deps, a) for a in alerts), limit=limit, offset=offset
        )


def _read_route(router: APIRouter, deps: RouterDeps) -> None:
    @router.get("/{alert_id}", summary="One alert", responses={404: {}})
    async def get_alert(
        alert_id: uuid.UUID, _principal: Annotated[Principal, Depends(_readers)]
    ) -> AlertView:
        try:
            async with deps.unit_of_work() as uow:
                alert = await alerting.get_alert(uow, alert_id=alert_id)
        except AlertNotFound:
            raise not_found("No alert with this id.") from None
        return alert_view(deps, alert)


def _timeline_route(router: APIRouter, deps: RouterDeps) -> None:
    @router.get("/{alert_id}/timeline", summary="Everything that happened to the alert")
    async def timeline(
        alert_id: uuid.UUID, principal: Annotated[Principal, Depends(_readers)]
    ) -> TimelineView:
        try:
            async with deps.unit_of_work() as uow:
                alert, entries = await alerting.alert_timeline(uow, alert_id=alert_id)
        except AlertNotFound:
            raise not_found("No alert with this id.") from None
        return TimelineView(
            alert_id=alert.id,
            notice_id=alert.notice_id,
            state=alert.state,
            entries=tuple(_timeline_entry(e, principal) for e in entries),
        )
