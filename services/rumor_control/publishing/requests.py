"""Who gets a published version: one delivery per liaison and channel, and one per radio
desk channel, accepted by the delivery engine in the publishing transaction itself. A drill
goes to the department's drill audience only (e.g. the outreach unit), never to liaisons or
the radio desk. Community subscribers by SMS get one text each, in their language
(`community_orders`), never a drill.

The delivery records are the durable queue (as the outbox is for events): they commit if
and only if the approval or retraction commits, and the engine's worker sends them. A
record names the recipient by id; the text is rendered from the version when it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

from schemas.base import Language, MsgType, is_drill
from schemas.deliveries import DeliveryChannel, DeliveryPurpose
from services.common.delivery import DeliveryOrder
from services.rumor_control.department import DepartmentConfig, RadioDesk, Recipient
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import BulletinRow, delivery_id
from services.rumor_control.unit_of_work import RumorControlUoW

__all__ = ["community_orders", "delivery_orders", "purpose_of", "request_deliveries"]


def purpose_of(msg_type: MsgType) -> DeliveryPurpose:
    """Why a recipient gets a version: a new bulletin, an update or a retraction."""
    match msg_type:
        case "Alert":
            return "bulletin"
        case "Update":
            return "update"
        case "Cancel":
            return "retraction"
        case _:
            assert_never(msg_type)


def delivery_orders(
    *,
    department: DepartmentConfig,
    bulletin: BulletinRow,
    version: int,
    msg_type: MsgType,
    correlation_id: str | None,
) -> list[DeliveryOrder]:
    """Liaisons in their language on each of their channels; the radio desk in Spanish; a
    drill only to the drill audience, each in their language."""
    purpose = purpose_of(msg_type)

    def order(recipient: Recipient, channel: DeliveryChannel, language: Language) -> DeliveryOrder:
        return DeliveryOrder(
            delivery_id=delivery_id(bulletin.bulletin_id, version, recipient.id, channel),
            aggregate_id=bulletin.bulletin_id,
            aggregate_version=version,
            recipient_id=recipient.id,
            channel=channel,
            purpose=purpose,
            language=language,
            # Releasable and fixed for the bulletin's life: what a failure event carries.
            context={"status": bulletin.status},
            correlation_id=correlation_id,
        )

    audience = department.audience(drill=is_drill(bulletin.status))
    return [
        order(recipient, channel, "es" if isinstance(recipient, RadioDesk) else recipient.language)
        for recipient in audience
        for channel in recipient.channels()
    ]


async def community_orders(
    uow: RumorControlUoW,
    *,
    deps: RumorControlDeps,
    bulletin: BulletinRow,
    version: int,
    msg_type: MsgType,
    correlation_id: str | None,
) -> list[DeliveryOrder]:
    """One SMS per active subscriber, in their language (none for a drill)."""
    if is_drill(bulletin.status) or not deps.settings.rumor_sms_subscribers:
        return []
    purpose = purpose_of(msg_type)
    return [
        DeliveryOrder(
            delivery_id=delivery_id(bulletin.bulletin_id, version, subscriber_id, "sms"),
            aggregate_id=bulletin.bulletin_id,
            aggregate_version=version,
            recipient_id=subscriber_id,
            channel="sms",
            purpose=purpose,
            language=language,
            context={"status": bulletin.status},
            correlation_id=correlation_id,
        )
        for subscriber_id, language in await uow.subscribers.active()
    ]


async def request_deliveries(
    uow: RumorControlUoW, *, deps: RumorControlDeps, orders: Sequence[DeliveryOrder]
) -> int:
    """Accept `orders` in `uow`'s transaction (the publishing one); how many were new.

    One statement per 1,000 records: a fan-out to 10,000 liaisons stays a short request.
    """
    return await deps.delivery.accept_many(uow.session, orders)
