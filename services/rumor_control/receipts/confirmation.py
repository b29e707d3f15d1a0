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


# A version number a real bulletin reaches; anything larger never reaches the database
# (PostgreSQL's integer would overflow).
_MAX_VERSION = 2**31 - 1
# Deliveries in these states never sent anything, so nobody holds their link.
_NOT_SENT = frozenset({"skipped", "cancelled"})


def _claims(deps: RumorControlDeps, token: str) -> tuple[uuid.UUID, int, uuid.UUID]:
    try:
        claims = read_link_token(deps.link_secret, token, now=int(deps.clock().timestamp()))
        if claims.get("k") != "receipt":
            raise InvalidLink("not a receipt link")
        version = claims["v"]
        if not isinstance(version, int) or not 1 <= version <= _MAX_VERSION:
            raise InvalidLink("version out of range")
        return uuid.UUID(str(claims["b"])), version, uuid.UUID(str(claims["r"]))
    except (LinkTokenError, KeyError, ValueError) as exc:
        raise InvalidLink(type(exc).__name__) from None


async def _was_sent(
    uow: RumorControlUoW, *, bulletin_id: uuid.UUID, version: int, recipient_id: uuid.UUID
) -> bool:
    """Whether this version of the bulletin went out to this recipient (so it holds the link)."""
    return any(
        d.version == version and d.recipient_id == recipient_id and d.state not in _NOT_SENT
        for d in await uow.deliveries.of(bulletin_id)
    )


async def record_receipt(
    uow: RumorControlUoW, *, deps: RumorControlDeps, token: str
) -> ReceiptOutcome:
    """A recipient opened their receipt link: record who has read which version.

    Only a version that was delivered to that recipient is recorded: a link naming another
    version or another recipient is refused like a forged one, whoever signed it.
    """
    bulletin_id, version, recipient_id = _claims(deps, token)
    recipient = deps.department.recipient(recipient_id)
    now = deps.clock()
    if await uow.bulletins.get(bulletin_id) is None:
        raise NotFound(str(bulletin_id))
    sent = await _was_sent(uow, bulletin_id=bulletin_id, version=version, recipient_id=recipient_id)
    if not sent:
        raise InvalidLink("not sent to this recipient")
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
