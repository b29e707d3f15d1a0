"""What one notification says on one channel: the releasable text plus the one-click link.

An SMS says less: the headline and the alert's short code to reply with (`domain.sms`).

The text was rendered when the notification was decided (`alerting.notify`) and kept on
the delivery record; the acknowledgement link is a credential, so it is minted here, at
send time, and never stored. The address comes from the alert's frozen snapshot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, assert_never
from uuid import UUID

from schemas.base import Status, is_drill
from services.common.delivery import (
    DeliveryError,
    DeliveryRecord,
    EmailOutbound,
    Outbound,
    SmsOutbound,
    WebhookOutbound,
)
from services.router.acknowledgement.links import ack_link
from services.router.deps import RouterDeps
from services.router.domain import AlertRecord, EscalationPosition
from services.router.domain.sms import sms_code, sms_text
from services.router.messages import render_footer

__all__ = ["Links", "outbound", "position_of"]


def position_of(record: DeliveryRecord) -> EscalationPosition | None:
    """The escalation step a notification belongs to (None: a cancellation)."""
    step, repeat = record.context.get("step"), record.context.get("repeat")
    if step is None:
        return None
    return EscalationPosition(int(repeat or 0), int(step))


# One message's acknowledgement link and its expiry (both None: no link).
Link = tuple[str | None, datetime | None]
# Links already minted for a batch, by (alert, notice version, person): a person's channels
# of one notification carry the same link, signed once (`RouterDeliveryPlan.resolve_all`).
Links = dict[tuple[UUID, int, UUID], Link]


def _acknowledgeable(alert: AlertRecord, record: DeliveryRecord) -> bool:
    return record.purpose != "cancel" and alert.snapshot.may_acknowledge(record.recipient_id)


def _link(
    deps: RouterDeps,
    alert: AlertRecord,
    record: DeliveryRecord,
    now: datetime,
    links: Links | None,
) -> Link:
    """The one-click link of `record`, minted once per person and version in a batch."""
    if not _acknowledgeable(alert, record):
        return None, None
    key = (alert.id, record.aggregate_version, record.recipient_id)
    if links is not None and key in links:
        return links[key]
    link: Link = ack_link(
        deps,
        alert_id=alert.id,
        version=record.aggregate_version,
        person_id=record.recipient_id,
        now=now,
    )
    if links is not None:
        links[key] = link
    return link


def _text(deps: RouterDeps, record: DeliveryRecord, link: Link) -> str:
    """The releasable text plus the footer: the one-click link and a reference."""
    ack_url, ack_expires = link
    return str(record.context["body"]) + render_footer(
        ack_url=ack_url,
        ack_expires_at=ack_expires,
        correlation_id=record.correlation_id,
        delivery_id=record.delivery_id,
        timezone=deps.timezone,
    )


def _payload(
    deps: RouterDeps,
    alert: AlertRecord,
    record: DeliveryRecord,
    now: datetime,
    *,
    text: str,
    link: Link,
) -> dict[str, Any]:
    """The webhook's JSON body."""
    ack_url, ack_expires = link
    status: Status = record.context.get("status", alert.status)
    return {
        "type": "aviso.alert.notification",
        "delivery_id": str(record.delivery_id),
        "purpose": record.purpose,
        "alert_id": str(alert.id),
        "notice_id": str(alert.notice_id),
        "notice_version": record.aggregate_version,
        "status": status,
        "drill": is_drill(status),
        "urgency": alert.urgency,
        "recipient_id": str(record.recipient_id),
        "headline": record.context["headline"],
        "text": text,
        "ack_url": ack_url,
        "ack_expires_at": ack_expires.isoformat() if ack_expires else None,
        # Where a person reads the notice: the console's alert page when there is a
        # console (a phone browser cannot send intake's bearer token), intake otherwise.
        "notice_url": deps.reading_url(alert_id=alert.id, notice_id=alert.notice_id),
        "console_url": deps.alert_page_url(alert.id),
        # The webhook sender takes no extra headers, so the correlation id rides inside.
        "correlation_id": record.correlation_id,
        "sent_at": now.isoformat(),
    }


def outbound(
    deps: RouterDeps,
    alert: AlertRecord,
    record: DeliveryRecord,
    now: datetime,
    *,
    links: Links | None = None,
) -> Outbound:
    """The message for `record` on its own channel, addressed from the frozen snapshot.

    Only what the channel sends is built: the webhook's payload for a webhook, the text
    with its link for a webhook or an e-mail, the short text for an SMS. `links` (a
    batch's) shares one signed link among a person's channels.

    Raises DeliveryError("no_address") when the snapshot has no address on the channel:
    a message is never sent on another channel instead.
    """
    recipient = alert.snapshot.recipient(record.recipient_id)
    address = recipient.channels.address(record.channel) if recipient is not None else None
    if address is None:
        raise DeliveryError("no address on this channel in the snapshot", reason="no_address")
    channel = record.channel
    match channel:
        case "webhook":
            link = _link(deps, alert, record, now, links)
            text = _text(deps, record, link)
            payload = _payload(deps, alert, record, now, text=text, link=link)
            return WebhookOutbound(url=address, payload=payload)
        case "email":
            text = _text(deps, record, _link(deps, alert, record, now, links))
            return EmailOutbound(
                to=address,
                subject=str(record.context["headline"]),
                text=text,
                language=record.language,
            )
        case "sms":
            # A text names its alert by a short code and carries no link: a reply acknowledges.
            short = sms_text(
                code=sms_code(alert.id),
                headline=str(record.context["headline"]),
                acknowledgeable=_acknowledgeable(alert, record),
            )
            return SmsOutbound(to=address, text=short)
        case _:
            assert_never(channel)
