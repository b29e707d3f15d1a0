"""`/v1/receipts?token=` (the link in each delivery; the signed token is the credential) and
`/v1/bulletins/{id}/deliveries` (who was sent what, who confirmed). Models and routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

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
    """One delivery's outcome."""

    delivery_id: uuid.UUID
    version: int
    recipient_id: uuid.UUID
    recipient_name: str | None
    channel: str
    language: str
    purpose: str
    outcome: str
    attempted_at: datetime


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
                    outcome=d.outcome,
                    attempted_at=d.attempted_at,
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
