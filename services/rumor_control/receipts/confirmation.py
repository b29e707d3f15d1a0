"""Receipts: a recipient opens the signed link in their delivery; vetters see who has read what."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.common.logging import get_logger
from services.common.signing import LinkTokenError, read_link_token
from services.rumor_control.department import Recipient
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import (
    Actor,
    DeliveryRow,
    InvalidLink,
    NotFound,
    ReceiptRow,
    TimelineRecord,
)
from services.rumor_control.metrics import RECEIPTS
from services.rumor_control.unit_of_work import RumorControlUoW

__all__ = ["ReceiptOutcome", "deliveries_and_receipts", "record_receipt"]

log = get_logger(__name__)


@dataclass(frozen=True)
class ReceiptOutcome:
    """A confirmed receipt."""

    bulletin_id: uuid.UUID
    version: int
    recipient: Recipient | None
    first_time: bool


def _claims(deps: RumorControlDeps, token: str) -> tuple[uuid.UUID, int, uuid.UUID]:
    try:
        claims = read_link_token(deps.link_secret, token, now=int(deps.clock().timestamp()))
        if claims.get("k") != "receipt":
            raise InvalidLink("not a receipt link")
        return uuid.UUID(str(claims["b"])), int(claims["v"]), uuid.UUID(str(claims["r"]))
    except (LinkTokenError, KeyError, ValueError) as exc:
        raise InvalidLink(type(exc).__name__) from None


async def record_receipt(
    uow: RumorControlUoW, *, deps: RumorControlDeps, token: str
) -> ReceiptOutcome:
    """A recipient opened their receipt link: record who has read which version."""
    bulletin_id, version, recipient_id = _claims(deps, token)
    recipient = deps.department.recipient(recipient_id)
    now = deps.clock()
    if await uow.bulletins.get(bulletin_id) is None:
        raise NotFound(str(bulletin_id))
    actor = Actor(recipient_id, recipient.name if recipient else "unknown", "liaison")
    step = TimelineRecord(
        "bulletin", bulletin_id, "receipt_confirmed", actor, now, version,
        {"recipient_id": str(recipient_id)},
    )  # fmt: skip
    first = await uow.deliveries.confirm_receipt(
        bulletin_id=bulletin_id, version=version, recipient_id=recipient_id, at=now,
        first_step=step,
    )  # fmt: skip

    def confirmed() -> None:
        if first:
            RECEIPTS.inc()
        log.info(
            "bulletin.receipt",
            bulletin_id=str(bulletin_id),
            version=version,
            recipient_id=str(recipient_id),
            first_time=first,
        )

    uow.after_commit(confirmed)
    return ReceiptOutcome(bulletin_id, version, recipient, first)


async def deliveries_and_receipts(
    uow: RumorControlUoW, *, bulletin_id: uuid.UUID
) -> tuple[list[DeliveryRow], list[ReceiptRow]]:
    """Who was sent which version, and who confirmed receipt."""
    if await uow.bulletins.get(bulletin_id) is None:
        raise NotFound(str(bulletin_id))
    return await uow.deliveries.of(bulletin_id), await uow.deliveries.receipts_of(bulletin_id)
