"""Router's edges: Kafka handlers and HTTP routes. Each parses its input, calls one use case.

HTTP: `GET /v1/alerts`, `GET /v1/alerts/{id}`, `POST /v1/alerts/{id}/ack`,
`GET /v1/alerts/{id}/timeline`, `GET/PUT /v1/directory`, and the one-click link:
`GET /ack?token=` shows a small confirmation page (opening it never acknowledges: mail
scanners and link previews open links too) and `POST /ack` acknowledges.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, get_args
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from schemas.base import Status, is_drill
from schemas.deliveries import DeliveryRequested
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.topics import DELIVERIES, NOTICES
from services.common.auth import Principal, Role, require_roles
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.kafka import EventConsumer
from services.common.problems import (
    Problem,
    bad_request,
    conflict,
    forbidden,
    not_found,
    payload_too_large,
    problem_response,
    problem_type,
)
from services.router import service
from services.router.directory import InvalidDirectory
from services.router.domain import (
    ACKNOWLEDGEABLE_STATES,
    AlertState,
    ChannelKind,
    DirectoryDocument,
)
from services.router.messages import format_window, render_page
from services.router.repository import AlertRecord, DirectoryVersion, TimelineEntry
from services.router.service import RouterDeps

__all__ = [
    "ack_link_router",
    "alerts_router",
    "directory_router",
    "register_consumers",
]

_STATES: tuple[str, ...] = get_args(AlertState)
_LINK_FORM_MAX_BYTES = 16 * 1024

# --- Kafka --------------------------------------------------------------------------


def register_consumers(consumer: EventConsumer, deps: RouterDeps) -> None:
    """Alerting consumes notices; the channel adapters consume delivery requests.

    Two consumer groups, so a slow channel never delays the next notice's alert.
    """
    notices = f"{deps.settings.router_group_prefix}.notices"
    adapters = f"{deps.settings.router_group_prefix}.adapters"

    @consumer.on("notice.received", topic=NOTICES, group_id=notices)
    async def on_notice_received(envelope: Envelope[NoticeReceived], uow: UnitOfWork) -> None:
        await service.open_alert(uow.session, deps=deps, notice=envelope.data)

    @consumer.on("notice.updated", topic=NOTICES, group_id=notices)
    async def on_notice_updated(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        await service.reopen_alert(uow.session, deps=deps, notice=envelope.data)

    @consumer.on("notice.cancelled", topic=NOTICES, group_id=notices)
    async def on_notice_cancelled(envelope: Envelope[NoticeCancelled], uow: UnitOfWork) -> None:
        await service.cancel_alert(uow.session, deps=deps, notice=envelope.data)

    @consumer.on("delivery.requested", topic=DELIVERIES, group_id=adapters)
    async def on_delivery_requested(envelope: Envelope[DeliveryRequested], uow: UnitOfWork) -> None:
        await service.deliver(uow.session, deps=deps, request=envelope.data)


# --- views ------------------------------------------------------------------------------


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


class AckRequest(BaseModel):
    """Acknowledge the notice version you read."""

    model_config = ConfigDict(extra="forbid")

    notice_version: int = Field(ge=1, description="The version you read; a stale one gets 409.")
    comment: str | None = Field(default=None, max_length=2000)


class AckView(_View):
    alert_id: uuid.UUID
    state: str
    notice_version: int
    acknowledged_version: int | None
    acknowledged_by: uuid.UUID | None
    acknowledged_at: datetime | None
    method: str | None
    already_acknowledged: bool


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


class DirectoryView(_View):
    version: int
    source: str
    created_by: str
    created_at: datetime
    digest: str
    directory: DirectoryDocument


def _alert_view(deps: RouterDeps, alert: AlertRecord) -> AlertView:
    snapshot = alert.snapshot
    return AlertView(
        id=alert.id,
        notice_id=alert.notice_id,
        notice_version=alert.notice_version,
        status=alert.status,
        drill=is_drill(alert.status),
        state=alert.state,
        needs_acknowledgement=alert.state in ACKNOWLEDGEABLE_STATES,
        urgency=alert.urgency,
        area=alert.content.area,
        summary=alert.content.summary,
        operation_type=alert.content.operation_type,
        window_start=alert.content.window_start,
        window_end=alert.content.window_end,
        window=format_window(
            alert.content.window_start,
            alert.content.window_end,
            deps.settings.router_display_timezone,
        ),
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
        snapshot=SnapshotView(
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
        ),
        links={
            "self": f"/v1/alerts/{alert.id}",
            "timeline": f"/v1/alerts/{alert.id}/timeline",
            "ack": f"/v1/alerts/{alert.id}/ack",
            "notice": deps.notice_url(alert.notice_id),
        },
    )


def _ack_view(result: service.AckResult) -> AckView:
    alert = result.alert
    return AckView(
        alert_id=alert.id,
        state=alert.state,
        notice_version=alert.notice_version,
        acknowledged_version=alert.acknowledged_version,
        acknowledged_by=alert.acknowledged_by,
        acknowledged_at=alert.acknowledged_at,
        method=alert.ack_method,
        already_acknowledged=result.already,
    )


def _timeline_entry(entry: TimelineEntry, *, may_read_comments: bool) -> TimelineEntryView:
    detail = dict(entry.detail)
    if "comment" in detail and not may_read_comments:
        # Comments are free text a contact wrote; ops see that there was one, not what.
        detail["comment"] = "[withheld]"
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
        detail=detail,
    )


def _directory_view(stored: DirectoryVersion) -> DirectoryView:
    return DirectoryView(
        version=stored.version,
        source=stored.source,
        created_by=stored.created_by,
        created_at=stored.created_at,
        digest=stored.digest,
        directory=stored.document,
    )


# --- errors -----------------------------------------------------------------------------


def _ack_problem(deps: RouterDeps, exc: Exception) -> Problem:
    """The problem for a refused acknowledgement (API and one-click link alike)."""
    if isinstance(exc, service.AlertNotFound):
        return not_found("No alert with this id.")
    if isinstance(exc, service.NotARecipient):
        return forbidden("Only people this alert reaches may acknowledge it.")
    if isinstance(exc, service.StaleVersion):
        return Problem(
            409,
            "Notice version is stale",
            f"The notice was updated to version {exc.current_version}. Read it again, then "
            f"acknowledge version {exc.current_version}.",
            type=problem_type("stale-notice-version"),
            extensions={
                "current_version": exc.current_version,
                "notice_url": deps.notice_url(exc.notice_id),
            },
        )
    if isinstance(exc, service.UnknownVersion):
        return conflict(
            f"Router knows the notice up to version {exc.current_version} only.",
            current_version=exc.current_version,
        )
    if isinstance(exc, service.AlertClosed):
        return Problem(
            409,
            "Alert resolved",
            "The alert was resolved (the notice was cancelled or its window ended); "
            "there is nothing left to acknowledge.",
            type=problem_type("alert-resolved"),
            extensions={"resolution": exc.resolution},
        )
    raise exc


def _person_of(principal: Principal) -> uuid.UUID:
    try:
        return uuid.UUID(principal.subject)
    except ValueError:
        raise forbidden(
            "This contact token is not linked to a directory person; issue it with "
            "--subject <person id>."
        ) from None


# --- /v1/alerts ---------------------------------------------------------------------------

_readers = require_roles(Role.OPS, Role.CONTACT, Role.ADMIN)
_contacts = require_roles(Role.CONTACT)
_admins = require_roles(Role.ADMIN)


def alerts_router(deps: RouterDeps) -> APIRouter:
    """Alerts: list, read, acknowledge, timeline."""
    router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

    @router.get("", summary="List alerts, newest first, optionally by state")
    async def list_alerts(
        _principal: Annotated[Principal, Depends(_readers)],
        state: Annotated[
            list[str] | None,
            Query(description=f"Repeatable; one of {', '.join(_STATES)} or `open`."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> AlertList:
        states: list[str] = []
        for value in state or ():
            if value == "open":
                states.extend(sorted(ACKNOWLEDGEABLE_STATES))
            elif value in _STATES:
                states.append(value)
            else:
                raise bad_request(f"Unknown state; use one of {', '.join(_STATES)} or open.")
        alerts = await service.list_alerts(deps=deps, states=states, limit=limit, offset=offset)
        return AlertList(
            items=tuple(_alert_view(deps, a) for a in alerts), limit=limit, offset=offset
        )

    @router.get("/{alert_id}", summary="One alert", responses={404: {}})
    async def get_alert(
        alert_id: uuid.UUID, _principal: Annotated[Principal, Depends(_readers)]
    ) -> AlertView:
        try:
            alert = await service.get_alert(deps=deps, alert_id=alert_id)
        except service.AlertNotFound:
            raise not_found("No alert with this id.") from None
        return _alert_view(deps, alert)

    @router.post(
        "/{alert_id}/ack",
        summary="Acknowledge the notice version you read (twice is harmless)",
        responses={403: {}, 404: {}, 409: {"description": "Stale version: re-read the notice"}},
    )
    async def acknowledge(
        alert_id: uuid.UUID,
        body: AckRequest,
        principal: Annotated[Principal, Depends(_contacts)],
    ) -> AckView:
        try:
            result = await service.acknowledge(
                deps=deps,
                alert_id=alert_id,
                person_id=_person_of(principal),
                notice_version=body.notice_version,
                method="api",
                comment=body.comment,
            )
        except (
            service.AlertNotFound,
            service.NotARecipient,
            service.StaleVersion,
            service.UnknownVersion,
            service.AlertClosed,
        ) as exc:
            raise _ack_problem(deps, exc) from None
        return _ack_view(result)

    @router.get("/{alert_id}/timeline", summary="Everything that happened to the alert")
    async def timeline(
        alert_id: uuid.UUID, principal: Annotated[Principal, Depends(_readers)]
    ) -> TimelineView:
        try:
            alert, entries = await service.alert_timeline(deps=deps, alert_id=alert_id)
        except service.AlertNotFound:
            raise not_found("No alert with this id.") from None
        comments = principal.role in (Role.CONTACT, Role.ADMIN)
        return TimelineView(
            alert_id=alert.id,
            notice_id=alert.notice_id,
            state=alert.state,
            entries=tuple(_timeline_entry(e, may_read_comments=comments) for e in entries),
        )

    return router


# --- /v1/directory --------------------------------------------------------------------------


def _expected_version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    try:
        return int(text.removeprefix("v"))
    except ValueError:
        raise bad_request('If-Match must be an ETag from GET /v1/directory, e.g. "v3".') from None


def directory_router(deps: RouterDeps) -> APIRouter:
    """The directory: people, the SPOC designation with delegations, the escalation policy."""
    router = APIRouter(prefix="/v1/directory", tags=["directory"])

    @router.get("", summary="The directory in force", responses={404: {}})
    async def get_directory(
        response: Response, _principal: Annotated[Principal, Depends(_admins)]
    ) -> DirectoryView:
        stored = await service.current_directory(deps=deps)
        if stored is None:
            raise not_found("No directory yet: PUT one, or set AVISO_ROUTER_DIRECTORY_FILE.")
        response.headers["ETag"] = f'"v{stored.version}"'
        return _directory_view(stored)

    @router.put(
        "",
        summary="Replace the directory (validated in full; open alerts keep their snapshot)",
        responses={409: {"description": "If-Match no longer current"}, 422: {}},
    )
    async def put_directory(
        document: DirectoryDocument,
        response: Response,
        principal: Annotated[Principal, Depends(_admins)],
        if_match: Annotated[str | None, Header()] = None,
    ) -> DirectoryView:
        try:
            stored = await service.replace_directory(
                deps=deps,
                document=document,
                source="api",
                created_by=principal.name,
                expected_version=_expected_version(if_match),
            )
        except InvalidDirectory as exc:
            raise Problem(
                422,
                "Directory refused",
                "The directory breaks the rules below; nothing was stored.",
                type=problem_type("directory-invalid"),
                extensions={"errors": [{"path": e.path, "message": e.message} for e in exc.errors]},
            ) from None
        except service.DirectoryConflict as exc:
            raise Problem(
                412 if if_match else 409,
                "Directory changed",
                f"The directory is at version {exc.current_version}; read it again first.",
                type=problem_type("directory-conflict"),
                extensions={"current_version": exc.current_version},
            ) from None
        response.headers["ETag"] = f'"v{stored.version}"'
        return _directory_view(stored)

    return router


# --- one-click acknowledgement link -------------------------------------------------------


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept or (request.method == "GET" and "json" not in accept)


def _link_problem(
    deps: RouterDeps, request: Request, problem: Problem, *, drill: bool = False
) -> Response:
    if _wants_html(request):
        notice_url = problem.extensions.get("notice_url")
        page = render_page(
            "link_problem.html.j2",
            title=problem.title,
            detail=problem.detail or "",
            notice_url=notice_url,
            drill=drill,
        )
        return HTMLResponse(page, status_code=problem.status)
    return problem_response(problem, instance=request.url.path)


def _rejected(reason: str) -> Problem:
    if reason == "expired":
        return Problem(
            410,
            "Link expired",
            "This acknowledgement link has expired. Use the link in the newest message, or "
            "acknowledge through the API.",
            type=problem_type("ack-link-expired"),
        )
    return Problem(
        403,
        "Link not valid",
        "This acknowledgement link is not valid. Use the link exactly as it was sent.",
        type=problem_type("ack-link-invalid"),
    )


async def _read_form(request: Request) -> dict[str, str]:
    """A small urlencoded (or JSON) body; /ack is outside the JSON-only /v1 body guard."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > _LINK_FORM_MAX_BYTES:
        raise payload_too_large(max_bytes=_LINK_FORM_MAX_BYTES)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _LINK_FORM_MAX_BYTES:
            raise payload_too_large(max_bytes=_LINK_FORM_MAX_BYTES)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("The body is not UTF-8.") from None
    if content_type == "application/json":
        try:
            data = json.loads(text or "{}")
        except ValueError:
            raise bad_request("The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise bad_request("Send an object with `token`.")
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
    return {k: v[0] for k, v in parse_qs(text, max_num_fields=10).items() if v}


def ack_link_router(deps: RouterDeps) -> APIRouter:
    """`GET /ack?token=` (confirmation page) and `POST /ack` (acknowledge)."""
    router = APIRouter(tags=["acknowledgement link"])

    @router.get(
        "/ack",
        summary="Confirmation page of a one-click link (does not acknowledge)",
        response_class=HTMLResponse,
        responses={403: {}, 409: {}, 410: {}},
    )
    async def confirm_page(
        request: Request, token: Annotated[str, Query(max_length=4096)]
    ) -> Response:
        try:
            claims = service.read_link(deps, token)
            alert = await service.get_alert(deps=deps, alert_id=claims.alert_id)
        except service.LinkRejected as exc:
            return _link_problem(deps, request, _rejected(exc.reason))
        except service.AlertNotFound:
            return _link_problem(deps, request, _rejected("mismatch"))
        drill = is_drill(alert.status)
        if alert.state == "resolved" and alert.acknowledged_version != claims.notice_version:
            return _link_problem(
                deps, request, _ack_problem(deps, service.AlertClosed(resolution=alert.resolution))
            )
        if claims.notice_version < alert.notice_version:
            stale = service.StaleVersion(
                current_version=alert.notice_version, alert_id=alert.id, notice_id=alert.notice_id
            )
            return _link_problem(deps, request, _ack_problem(deps, stale), drill=drill)
        page = render_page(
            "ack_confirm.html.j2",
            drill=drill,
            content=alert.content,
            window=format_window(
                alert.content.window_start,
                alert.content.window_end,
                deps.settings.router_display_timezone,
            ),
            urgency=alert.urgency,
            notice_version=claims.notice_version,
            notice_url=deps.notice_url(alert.notice_id),
            already=alert.acknowledged_version == claims.notice_version,
            action="/ack",
            token=token,
        )
        # The page holds the token in a form: keep it out of caches and referrers.
        return HTMLResponse(
            page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        )

    @router.post(
        "/ack",
        summary="Acknowledge through a one-click link (form field `token`, optional `comment`)",
        responses={403: {}, 409: {}, 410: {}},
    )
    async def acknowledge_by_link(request: Request) -> Response:
        form = await _read_form(request)
        token = form.get("token", "")
        comment = (form.get("comment") or "").strip()[:2000] or None
        try:
            claims = service.read_link(deps, token)
            result = await service.acknowledge(
                deps=deps,
                alert_id=claims.alert_id,
                person_id=claims.person_id,
                notice_version=claims.notice_version,
                method="link",
                comment=comment,
            )
        except service.LinkRejected as exc:
            return _link_problem(deps, request, _rejected(exc.reason))
        except service.AlertNotFound:
            return _link_problem(deps, request, _rejected("mismatch"))
        except (
            service.NotARecipient,
            service.StaleVersion,
            service.UnknownVersion,
            service.AlertClosed,
        ) as exc:
            return _link_problem(deps, request, _ack_problem(deps, exc))
        if _wants_html(request):
            page = render_page(
                "ack_done.html.j2",
                drill=is_drill(result.alert.status),
                already=result.already,
                alert_id=result.alert.id,
                notice_version=claims.notice_version,
            )
            return HTMLResponse(page, headers={"Cache-Control": "no-store"})
        return JSONResponse(_ack_view(result).model_dump(mode="json"))

    return router
