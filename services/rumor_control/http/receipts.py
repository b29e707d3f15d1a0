"""`/v1/receipts?token=` (the link in each delivery; the signed token is the credential) and
`/v1/bulletins/{id}/deliveries` (who was sent what, who confirmed). Models and routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from schemas.deliveries import DeliveryFailureReason
from services.common.delivery.sms_reports import ReportStatus
from services.common.problems import forbidden
from services.rumor_control import receipts
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import DeliveryRow, InvalidLink, ReceiptRow
from services.rumor_control.http.common import BulletinId, LedgerReader, problems

__all__ = ["DeliveriesOut", "deliveries_routes", "routes"]

_RECEIPT_PAGE = {
    "en": ("Thank you", "We have recorded that you received this bulletin."),
    "es": ("Gracias", "Registramos que recibió este boletín."),
}


class DeliveryOut(BaseModel):
    """One delivery as it stands: its state, attempts so far and why the last one failed."""

    delivery_id: uuid.UUID
    version: int
    recipient_id: uuid.UUID
    recipient_name: str | None
    channel: str
    language: str
    purpose: str
    state: str = Field(
        description="pending, sending, delivered, failed (final), skipped (nothing to send: "
        "e.g. a newer version superseded this one) or cancelled."
    )
    attempts: int = Field(description="Attempts that reached the network so far.")
    last_failure_reason: DeliveryFailureReason | None = Field(
        description="Reason class of the last failed attempt (never an address)."
    )
    outcome: str = Field(
        description="Older summary of `state`: sent, failed, skipped, or pending while "
        "the delivery is still being tried."
    )
    attempted_at: datetime = Field(description="When the delivery last changed.")
    delivered_at: datetime | None = None
    segments: int | None = Field(
        default=None, description="SMS only: the segments the gateway was handed."
    )
    report: ReportStatus | None = Field(
        default=None,
        description="SMS only: the furthest the gateway's delivery reports got (accepted by "
        "the gateway, delivered to the handset, failed); null before any report.",
    )
    reported_at: datetime | None = None


def _outcome(state: str) -> str:
    """The summary the endpoint has always shown, from the record's state."""
    match state:
        case "delivered":
            return "sent"
        case "failed":
            return "failed"
        case "skipped" | "cancelled":
            return "skipped"
        case _:
            return "pending"


class ReceiptOut(BaseModel):
    """Who confirmed reading which version."""

    version: int
    recipient_id: uuid.UUID
    recipient_name: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    seen_count: int


class DeliveriesOut(BaseModel):
    """Deliveries and receipts of a bulletin."""

    deliveries: list[DeliveryOut]
    receipts: list[ReceiptOut]

    @classmethod
    def of(
        cls,
        deliveries: list[DeliveryRow],
        receipts: list[ReceiptRow],
        names: dict[uuid.UUID, str],
    ) -> DeliveriesOut:
        """With recipients' names from the configuration."""
        return cls(
            deliveries=[
                DeliveryOut(
                    delivery_id=d.delivery_id,
                    version=d.version,
                    recipient_id=d.recipient_id,
                    recipient_name=names.get(d.recipient_id),
                    channel=d.channel,
                    language=d.language,
                    purpose=d.purpose,
                    state=d.state,
                    attempts=d.attempts,
                    last_failure_reason=d.last_failure_reason,
                    outcome=_outcome(d.state),
                    attempted_at=d.updated_at,
                    delivered_at=d.delivered_at,
                    segments=d.segments,
                    report=d.report,
                    reported_at=d.reported_at,
                )
                for d in deliveries
            ],
            receipts=[
                ReceiptOut(
                    version=r.version,
                    recipient_id=r.recipient_id,
                    recipient_name=names.get(r.recipient_id),
                    first_seen_at=r.first_seen_at,
                    last_seen_at=r.last_seen_at,
                    seen_count=r.seen_count,
                )
                for r in receipts
            ],
        )


def deliveries_routes(deps: RumorControlDeps) -> APIRouter:
    """`/v1/bulletins/{id}/deliveries`, listed with the other bulletin routes."""
    router = APIRouter(prefix="/v1", tags=["rumor control"])

    @router.get("/bulletins/{bulletin_id}/deliveries", summary="Deliveries and receipts")
    async def deliveries(principal: LedgerReader, bulletin_id: BulletinId) -> DeliveriesOut:
        with problems():
            async with deps.unit_of_work() as uow:
                sent, received = await receipts.deliveries_and_receipts(
                    uow, bulletin_id=bulletin_id
                )
        names = {r.id: r.name for r in deps.department.recipients()}
        return DeliveriesOut.of(sent, received, names)

    return router


def routes(deps: RumorControlDeps) -> APIRouter:
    """`/v1/receipts?token=`."""
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
            with problems():
                async with deps.unit_of_work() as uow:
                    outcome = await receipts.record_receipt(uow, deps=deps, token=token)
                    await uow.commit()
        except InvalidLink:
            raise forbidden("This link is invalid or has expired.") from None
        language = outcome.recipient.language if outcome.recipient else "es"
        title, text = _RECEIPT_PAGE[language]
        page = (
            f'<!doctype html><html lang="{language}"><meta charset="utf-8">'
            f"<title>{title}</title><h1>{title}</h1><p>{text}</p></html>"
        )
        return HTMLResponse(page)

    return router
