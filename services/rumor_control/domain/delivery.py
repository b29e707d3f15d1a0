"""What a delivery outcome means for its bulletin: a timeline step and, on failure, an event.

The delivery engine reports each outcome to rumor_control's plan inside the transaction
that records it; the plan turns it into one of these transitions and applies it with
`uow.bulletins.apply(transition)`, so the timeline entry and `bulletin.delivery_failed`
commit together with the delivery record. Pure: no I/O, no addresses (recipients are ids).

    sending -> delivered                        timeline "delivered"
    sending -> pending (retry) | failed (final) timeline "delivery_failed" + event (final?)
    pending -> skipped (version superseded...)  timeline "delivery_skipped"
    an SMS gateway's report (accepted, ...)     timeline "delivery_report" (a handset
                                                failure also "delivery_failed", as above)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.base import Language, Status
from schemas.bulletins import BulletinDeliveryFailed
from schemas.deliveries import DeliveryChannel, DeliveryFailureReason, DeliveryPurpose
from services.common.delivery.sms_reports import ReportStatus
from services.rumor_control.domain.bulletins import BulletinTransition
from services.rumor_control.domain.timeline import TimelineAction, TimelineRecord

__all__ = [
    "BulletinDelivery",
    "delivered",
    "delivery_failed",
    "delivery_reported",
    "delivery_skipped",
]


@dataclass(frozen=True)
class BulletinDelivery:
    """One bulletin version for one recipient on one channel (the engine's record, by id)."""

    delivery_id: uuid.UUID
    bulletin_id: uuid.UUID
    version: int
    recipient_id: uuid.UUID
    channel: DeliveryChannel
    language: Language
    purpose: DeliveryPurpose
    status: Status

    def step(self, action: TimelineAction, at: datetime, **extra: Any) -> TimelineRecord:
        """A timeline entry of this delivery: ids, channel and codes, never an address."""
        detail = {
            "recipient_id": str(self.recipient_id),
            "channel": self.channel,
            "language": self.language,
            "delivery_id": str(self.delivery_id),
            "purpose": self.purpose,
            **extra,
        }
        return TimelineRecord("bulletin", self.bulletin_id, action, None, at, self.version, detail)


def delivered(delivery: BulletinDelivery, *, attempts: int, at: datetime) -> BulletinTransition:
    """sending -> delivered: the recipient's receiver accepted the version."""
    return BulletinTransition(
        delivery.bulletin_id, timeline=(delivery.step("delivered", at, attempts=attempts),)
    )


def delivery_failed(
    delivery: BulletinDelivery,
    *,
    reason: DeliveryFailureReason,
    attempts: int,
    final: bool,
    at: datetime,
) -> BulletinTransition:
    """An attempt failed: retried later (final False) or never again (final True).

    `attempts` counts network attempts; a delivery that failed before any (no address,
    expired) reports 1, the attempt to prepare it, since the event counts from one.
    """
    counted = max(attempts, 1)
    event = BulletinDeliveryFailed(
        bulletin_id=delivery.bulletin_id,
        version=delivery.version,
        status=delivery.status,
        recipient_id=delivery.recipient_id,
        channel=delivery.channel,
        reason=reason,
        attempts=counted,
        final=final,
        failed_at=at,
    )
    step = delivery.step("delivery_failed", at, reason=reason, attempts=counted, final=final)
    return BulletinTransition(delivery.bulletin_id, timeline=(step,), events=(event,))


def delivery_skipped(
    delivery: BulletinDelivery, *, skip_reason: str, at: datetime
) -> BulletinTransition:
    """pending -> skipped: nothing was sent, e.g. a newer version superseded this one."""
    return BulletinTransition(
        delivery.bulletin_id,
        timeline=(delivery.step("delivery_skipped", at, skip_reason=skip_reason),),
    )


def delivery_reported(
    delivery: BulletinDelivery, *, status: ReportStatus, smsc_error: str | None, at: datetime
) -> BulletinTransition:
    """The SMS gateway said how far the text got (accepted, delivered, failed)."""
    extra: dict[str, Any] = {"status": status}
    if smsc_error is not None:
        extra["smsc_error"] = smsc_error  # a code from the carrier, never its free text
    return BulletinTransition(
        delivery.bulletin_id, timeline=(delivery.step("delivery_report", at, **extra),)
    )
