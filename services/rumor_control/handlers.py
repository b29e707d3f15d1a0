"""The edges of rumor control: HTTP routes and Kafka handlers, each calling one use case.

Handlers parse their contract, call the use case and shape the answer for the caller's
role; they hold no SQL and no business rules. Errors leave as RFC 9457 problems with a
`reason_code` the vetter (or the CLI) can act on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from fastapi.responses import HTMLResponse, PlainTextResponse

from schemas.alerts import AlertAcknowledged
from schemas.base import Language, is_drill
from schemas.deliveries import DeliveryRequested
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.topics import ALERTS, DELIVERIES, NOTICES
from services.common.auth import Principal, Role, require_roles
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.logging import get_logger
from services.common.problems import Problem, conflict, forbidden, not_found, problem_type
from services.common.runtime import ServiceRuntime
from services.rumor_control import feeds, service
from services.rumor_control.adapters import BulletinSender, radio_delivery_text
from services.rumor_control.api import (
    ApproveIn,
    AssessIn,
    AssessOut,
    BulletinDetail,
    BulletinSummary,
    DeliveriesOut,
    EditIn,
    RejectIn,
    ReportIn,
    ReportOut,
    RetractIn,
    RumorOut,
    SignOffIn,
    TimelineEntry,
    bulletin_detail,
    bulletin_summary,
    rumor_out,
)
from services.rumor_control.domain import Actor, VettingError, person_id
from services.rumor_control.guardrails import Sections
from services.rumor_control.metrics import VETTING_REFUSALS
from services.rumor_control.repository import VersionRow

__all__ = ["feeds_router", "receipts_router", "register_consumers", "rumor_router"]

log = get_logger(__name__)

Vetter = Annotated[Principal, Depends(require_roles(Role.VETTER))]
Reporter = Annotated[Principal, Depends(require_roles(Role.LIAISON, Role.VETTER))]
VetterOrOps = Annotated[Principal, Depends(require_roles(Role.VETTER, Role.OPS))]
Reader = Annotated[Principal, Depends(require_roles(Role.VETTER, Role.OPS, Role.LIAISON))]
BulletinId = Annotated[uuid.UUID, Path(description="The bulletin's id.")]
RumorId = Annotated[uuid.UUID, Path(description="The rumor's id.")]

ATOM = "application/atom+xml; charset=utf-8"
CAP = "application/cap+xml; charset=utf-8"


def _actor(principal: Principal) -> Actor:
    return Actor(person_id(principal.subject), principal.name, principal.role.value)


@contextmanager
def _problems() -> Iterator[None]:
    """Use-case exceptions as problem+json (reason codes, never request text)."""
    try:
        yield
    except service.NotFound:
        raise not_found("No such rumor or bulletin.") from None
    except VettingError as exc:
        VETTING_REFUSALS.labels(exc.code).inc()
        log.info("bulletin.vetting_refused", reason_code=exc.code)
        if exc.forbidden:
            raise forbidden(exc.detail, reason_code=exc.code) from None
        raise conflict(exc.detail, reason_code=exc.code) from None
    except service.InvalidInput as exc:
        raise Problem(
            422,
            "Unprocessable Content",
            exc.detail,
            type=problem_type("invalid-input"),
            extensions={"reason_code": exc.code},
        ) from None


def rumor_router(ctx: service.Context, runtime: ServiceRuntime) -> APIRouter:
    """`/v1/rumors` and `/v1/bulletins`."""
    router = APIRouter(prefix="/v1", tags=["rumor control"])
    sessions = runtime.sessions

    @router.post("/rumors", status_code=201, summary="Report a rumor as heard")
    async def report_rumor(principal: Reporter, body: ReportIn) -> ReportOut:
        outcome = await service.report_rumor(
            sessions=sessions,
            ctx=ctx,
            actor=_actor(principal),
            report=service.NewReport(
                claim=body.claim,
                place=body.place,
                channel=body.channel,
                organisation=body.organisation,
                observed_at=body.observed_at,
                language=body.language,
                drill=body.drill,
            ),
        )
        return ReportOut.of(outcome)

    @router.get("/rumors", summary="The rumor ledger with suggested statuses")
    async def list_rumors(principal: VetterOrOps) -> list[RumorOut]:
        views = await service.list_rumors(sessions=sessions, ctx=ctx)
        return [rumor_out(view, with_reports=False) for view in views]

    @router.get("/rumors/{rumor_id}", summary="One rumor (vetters also see the reports)")
    async def get_rumor(principal: VetterOrOps, rumor_id: RumorId) -> RumorOut:
        with _problems():
            view = await service.get_rumor(sessions=sessions, ctx=ctx, rumor_id=rumor_id)
        return rumor_out(view, with_reports=principal.role is Role.VETTER)

    @router.post(
        "/rumors/{rumor_id}/assess", summary="Set a rumor's status and draft its Rumor/Fact"
    )
    async def assess_rumor(principal: Vetter, rumor_id: RumorId, body: AssessIn) -> AssessOut:
        with _problems():
            _rumor, bulletin_id = await service.assess_rumor(
                sessions=sessions,
                ctx=ctx,
                actor=_actor(principal),
                rumor_id=rumor_id,
                assessment=body.assessment,
                as_of=body.as_of,
                expires_at=body.expires_at,
                linked_notice_ids=body.linked_notice_ids,
            )
            view = await service.get_rumor(sessions=sessions, ctx=ctx, rumor_id=rumor_id)
        return AssessOut(rumor=rumor_out(view, with_reports=True), bulletin_id=bulletin_id)

    @router.get("/rumors/{rumor_id}/timeline", summary="Every step of a rumor")
    async def rumor_timeline(principal: VetterOrOps, rumor_id: RumorId) -> list[TimelineEntry]:
        entries = await service.timeline(
            sessions=sessions, aggregate="rumor", aggregate_id=rumor_id
        )
        return [TimelineEntry.of(entry) for entry in entries]

    @router.get("/bulletins", summary="Bulletins (liaisons see published ones only)")
    async def list_bulletins(principal: Reader) -> list[BulletinSummary]:
        states = ("published", "retracted") if principal.role is Role.LIAISON else None
        rows = await service.list_bulletins(sessions=sessions, states=states)
        return [bulletin_summary(bulletin, latest) for bulletin, latest in rows]

    @router.get("/bulletins/{bulletin_id}", summary="A bulletin: both languages and guardrails")
    async def get_bulletin(principal: Reader, bulletin_id: BulletinId) -> BulletinDetail:
        with _problems():
            view = await service.get_bulletin(sessions=sessions, bulletin_id=bulletin_id)
        if principal.role is Role.LIAISON:
            if view.last_published is None:
                raise not_found("No such rumor or bulletin.")
            return bulletin_detail(view, texts="published")
        return bulletin_detail(view, texts="draft" if principal.role is Role.VETTER else "none")

    @router.put(
        "/bulletins/{bulletin_id}/texts/{language}",
        summary="Edit one language; the guardrails run again and sign-offs start over",
    )
    async def edit_bulletin(
        principal: Vetter, bulletin_id: BulletinId, language: Language, body: EditIn
    ) -> BulletinDetail:
        with _problems():
            view = await service.edit_bulletin(
                sessions=sessions,
                ctx=ctx,
                actor=_actor(principal),
                bulletin_id=bulletin_id,
                language=language,
                changes=body.changes(),
            )
        return bulletin_detail(view, texts="draft")

    @router.post("/bulletins/{bulletin_id}/signoff", summary="Sign off language versions")
    async def sign_off(
        principal: Vetter, bulletin_id: BulletinId, body: SignOffIn
    ) -> BulletinDetail:
        with _problems():
            view = await service.sign_off(
                sessions=sessions,
                ctx=ctx,
                actor=_actor(principal),
                bulletin_id=bulletin_id,
                languages=body.languages,
            )
        return bulletin_detail(view, texts="draft")

    @router.post(
        "/bulletins/{bulletin_id}/approve",
        summary="Approve (not the author; every language signed off) and publish",
        responses={
            403: {"description": "The author may not approve"},
            409: {"description": "Blocked or not signed off"},
        },
    )
    async def approve(
        principal: Vetter, bulletin_id: BulletinId, body: Annotated[ApproveIn | None, Body()] = None
    ) -> BulletinDetail:
        with _problems():
            view = await service.approve(
                sessions=sessions,
                ctx=ctx,
                actor=_actor(principal),
                bulletin_id=bulletin_id,
                sign_off_languages=(body.sign_off if body else []),
            )
        return bulletin_detail(view, texts="draft")

    @router.post("/bulletins/{bulletin_id}/reject", summary="Reject a draft with reason codes")
    async def reject(principal: Vetter, bulletin_id: BulletinId, body: RejectIn) -> BulletinDetail:
        with _problems():
            view = await service.reject(
                sessions=sessions,
                ctx=ctx,
                actor=_actor(principal),
                bulletin_id=bulletin_id,
                reason_codes=body.reason_codes,
                comment=body.comment,
            )
        return bulletin_detail(view, texts="draft")

    @router.post(
        "/bulletins/{bulletin_id}/retract", summary="Withdraw a published bulletin (CAP Cancel)"
    )
    async def retract(
        principal: Vetter, bulletin_id: BulletinId, body: RetractIn
    ) -> BulletinDetail:
        with _problems():
            view = await service.retract(
                sessions=sessions,
                ctx=ctx,
                actor=_actor(principal),
                bulletin_id=bulletin_id,
                reason_code=body.reason_code,
            )
        return bulletin_detail(view, texts="draft")

    @router.get("/bulletins/{bulletin_id}/timeline", summary="Every step of a bulletin")
    async def bulletin_timeline(
        principal: VetterOrOps, bulletin_id: BulletinId
    ) -> list[TimelineEntry]:
        with _problems():
            entries = await service.timeline(
                sessions=sessions, aggregate="bulletin", aggregate_id=bulletin_id
            )
        return [TimelineEntry.of(entry) for entry in entries]

    @router.get("/bulletins/{bulletin_id}/deliveries", summary="Deliveries and receipts")
    async def deliveries(principal: VetterOrOps, bulletin_id: BulletinId) -> DeliveriesOut:
        with _problems():
            sent, received = await service.deliveries_and_receipts(
                sessions=sessions, bulletin_id=bulletin_id
            )
        names = {r.id: r.name for r in ctx.department.recipients()}
        return DeliveriesOut.of(sent, received, names)

    @router.get(
        "/bulletins/{bulletin_id}/radio",
        summary="The radio desk's read-aloud script (Spanish first)",
        response_class=PlainTextResponse,
    )
    async def radio_script(principal: Reader, bulletin_id: BulletinId) -> PlainTextResponse:
        with _problems():
            view = await service.get_bulletin(sessions=sessions, bulletin_id=bulletin_id)
        version = view.last_published if principal.role is Role.LIAISON else view.latest
        if version is None or principal.role is Role.OPS:
            raise not_found("No such rumor or bulletin.")
        texts = version.texts
        _headline, script = radio_delivery_text(
            spanish=Sections(**texts["es"]),
            english=Sections(**texts["en"]),
            drill=is_drill(view.bulletin.status),
            words_per_minute=ctx.settings.rumor_radio_words_per_minute,
            bulletin_ref=f"{bulletin_id} v{version.version}",
        )
        return PlainTextResponse(script)

    return router


_RECEIPT_PAGE = {
    "en": ("Thank you", "We have recorded that you received this bulletin."),
    "es": ("Gracias", "Registramos que recibió este boletín."),
}


def receipts_router(ctx: service.Context, runtime: ServiceRuntime) -> APIRouter:
    """`/v1/receipts?token=`: the link in each delivery (the signed token is the credential)."""
    router = APIRouter(prefix="/v1", tags=["receipts"])

    @router.get(
        "/receipts",
        summary="Confirm receipt of a bulletin version",
        response_class=HTMLResponse,
    )
    async def confirm_receipt(
        token: Annotated[str, Query(max_length=4096, description="The signed receipt token.")],
    ) -> HTMLResponse:
        try:
            outcome = await service.record_receipt(sessions=runtime.sessions, ctx=ctx, token=token)
        except service.InvalidLink:
            raise forbidden("This link is invalid or has expired.") from None
        except service.NotFound:
            raise not_found("No such rumor or bulletin.") from None
        language = outcome.recipient.language if outcome.recipient else "es"
        title, text = _RECEIPT_PAGE[language]
        page = (
            f'<!doctype html><html lang="{language}"><meta charset="utf-8">'
            f"<title>{title}</title><h1>{title}</h1><p>{text}</p></html>"
        )
        return HTMLResponse(page)

    return router


def feeds_router(ctx: service.Context, runtime: ServiceRuntime) -> APIRouter:
    """The public feeds (no token): Atom and CAP 1.2. Drills never appear."""
    router = APIRouter(prefix="/feeds", tags=["public feeds"])
    sessions = runtime.sessions

    @router.get("/bulletins.atom", summary="Published bulletins, Atom", response_class=Response)
    async def atom() -> Response:
        rows = await service.public_entries(sessions=sessions)
        body = feeds.atom_feed(rows, department=ctx.department, base_url=ctx.public_base_url)
        return Response(body, media_type=ATOM)

    @router.get(
        "/cap.xml", summary="Published bulletins as CAP 1.2 (Atom index)", response_class=Response
    )
    async def cap_index() -> Response:
        every = await service.public_entries(sessions=sessions, latest_only=False)
        versions: dict[uuid.UUID, list[VersionRow]] = {}
        for bulletin, version in every:
            versions.setdefault(bulletin.bulletin_id, []).append(version)
        latest = await service.public_entries(sessions=sessions)
        body = feeds.cap_feed(
            latest,
            versions=versions,
            department=ctx.department,
            gazetteer=ctx.gazetteer,
            base_url=ctx.public_base_url,
        )
        return Response(body, media_type=ATOM)

    @router.get(
        "/cap/{bulletin_id}/{version}.xml", summary="One CAP 1.2 message", response_class=Response
    )
    async def cap_message(bulletin_id: BulletinId, version: int) -> Response:
        with _problems():
            bulletin, row, versions = await service.public_version(
                sessions=sessions, bulletin_id=bulletin_id, version=version
            )
        alert = feeds.cap_alert(
            bulletin,
            row,
            versions=versions,
            department=ctx.department,
            gazetteer=ctx.gazetteer,
            base_url=ctx.public_base_url,
        )
        return Response(feeds.cap_document(alert), media_type=CAP)

    return router


def register_consumers(runtime: ServiceRuntime, ctx: service.Context) -> None:
    """Kafka handlers: notices, acknowledgements and our own delivery requests."""
    prefix = ctx.settings.rumor_group_prefix
    notices_group = f"{prefix}rumor_control.notices"
    alerts_group = f"{prefix}rumor_control.alerts"
    deliveries_group = f"{prefix}rumor_control.deliveries"
    on = runtime.consumer.on

    @on("notice.received", topic=NOTICES, group_id=notices_group)
    async def notice_received(envelope: Envelope[NoticeReceived], uow: UnitOfWork) -> None:
        await service.apply_notice(session=uow.session, ctx=ctx, notice=envelope.data)

    @on("notice.updated", topic=NOTICES, group_id=notices_group)
    async def notice_updated(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        await service.apply_notice(session=uow.session, ctx=ctx, notice=envelope.data)

    @on("notice.cancelled", topic=NOTICES, group_id=notices_group)
    async def notice_cancelled(envelope: Envelope[NoticeCancelled], uow: UnitOfWork) -> None:
        await service.apply_notice_cancelled(session=uow.session, ctx=ctx, cancelled=envelope.data)

    @on("alert.acknowledged", topic=ALERTS, group_id=alerts_group)
    async def alert_acknowledged(envelope: Envelope[AlertAcknowledged], uow: UnitOfWork) -> None:
        await service.acknowledge_alert(session=uow.session, ctx=ctx, acknowledged=envelope.data)

    sender = BulletinSender.from_settings(ctx.settings)

    @on("delivery.requested", topic=DELIVERIES, group_id=deliveries_group)
    async def delivery_requested(envelope: Envelope[DeliveryRequested], uow: UnitOfWork) -> None:
        await service.deliver(session=uow.session, ctx=ctx, sender=sender, request=envelope.data)

    async def close_sender(stop: asyncio.Event) -> None:
        # The runtime stops consumers before workers, so no delivery is in flight here.
        await stop.wait()
        await sender.close()

    runtime.add_worker("rumor_control.sender", close_sender)
