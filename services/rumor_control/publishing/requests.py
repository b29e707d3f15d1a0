"""Who gets a published version: one delivery request per liaison and channel, and one per
radio desk channel. Pure: the requests go on the outbox with the publishing transition."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import assert_never

from schemas.base import Language, MsgType, is_drill
from schemas.deliveries import DeliveryChannel, DeliveryPurpose, DeliveryRequested
from services.rumor_control.department import DepartmentConfig, Recipient
from services.rumor_control.domain import BulletinRow, delivery_id
from services.rumor_control.guardrails import Sections
from services.rumor_control.publishing.texts import liaison_text, radio_delivery_text

__all__ = ["delivery_requests", "purpose_of"]


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


def delivery_requests(
    *,
    department: DepartmentConfig,
    words_per_minute: int,
    bulletin: BulletinRow,
    version: int,
    msg_type: MsgType,
    texts: Mapping[Language, Sections],
    at: datetime,
) -> list[DeliveryRequested]:
    """Liaisons get the text in their language; the radio desk its read-aloud script."""
    purpose = purpose_of(msg_type)

    def request(
        recipient: Recipient, channel: DeliveryChannel, language: Language, headline: str, body: str
    ) -> DeliveryRequested:
        return DeliveryRequested(
            delivery_id=delivery_id(bulletin.bulletin_id, version, recipient.id, channel),
            origin="rumor_control",
            aggregate_id=bulletin.bulletin_id,
            aggregate_version=version,
            purpose=purpose,
            recipient_id=recipient.id,
            channel=channel,
            language=language,
            status=bulletin.status,
            headline=headline[:300],
            body=body,
            requested_at=at,
        )

    requests = [
        request(
            liaison, channel, liaison.language, texts[liaison.language].headline,
            liaison_text(texts[liaison.language], liaison.language),
        )
        for liaison in department.liaisons
        for channel in liaison.channels()
    ]  # fmt: skip
    desk = department.radio_desk
    if desk is not None:
        headline, body = radio_delivery_text(
            spanish=texts["es"],
            english=texts["en"],
            drill=is_drill(bulletin.status),
            words_per_minute=words_per_minute,
            bulletin_ref=f"{bulletin.bulletin_id} v{version}",
        )
        requests += [request(desk, channel, "es", headline, body) for channel in desk.channels()]
    return requests
