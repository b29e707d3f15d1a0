"""Notify: ask the delivery engine to reach one person about an alert, on each channel.

A notification is part of the change that causes it: the caller adds what `notify`
returns to its transition, so the delivery orders (accepted by the delivery engine into
its durable queue, `delivery_records`) and their "notified" timeline entries are written
with the state change, in one repository call and one transaction. Nothing travels over
Kafka: this router's own delivery engine sends them (`services/router/delivery/`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from schemas.base import Status
from services.common.cloudevents import current_correlation_id
from services.common.delivery.records import DeliveryOrder
from services.common.logging import get_logger
from services.router.deps import RouterDeps
from services.router.domain import (
    AlertRecord,
    EscalationPosition,
    TimelineRecord,
    Transition,
    delivery_id_for,
)
from services.router.messages import RenderedMessage, render_notification
from services.router.observability import alert_fields

__all__ = ["Purpose", "notify", "order_context"]

log = get_logger(__name__)

Purpose = Literal["alert", "escalation", "update", "cancel"]


def notify(
    transition: Transition,
    *,
    deps: RouterDeps,
    recipient_id: uuid.UUID,
    purpose: Purpose,
    now: datetime,
    at_position: bool = True,
    correlation_id: str | None = None,
    cancel_reason: str | None = None,
) -> Transition:
    """`transition`, also ordering delivery to `recipient_id` on each frozen channel.

    `at_position=False` (a cancellation) ties the messages to no escalation step.
    """
    alert = transition.after
    where = alert.position if at_position else None
    recipient = alert.snapshot.recipient(recipient_id)
    if recipient is None:
        log.error(
            "alert.recipient_not_in_snapshot", **alert_fields(alert), recipient_id=str(recipient_id)
        )
        return transition
    message = _render(deps, alert, purpose=purpose, where=where, cancel_reason=cancel_reason)
    context = order_context(message, notice_id=alert.notice_id, status=alert.status, position=where)
    entries: list[TimelineRecord] = []
    orders: list[DeliveryOrder] = []
    for channel in recipient.channels.kinds():
        delivery_id = _delivery_id(alert, recipient_id, channel, purpose, where)
        orders.append(
            DeliveryOrder(
                delivery_id=delivery_id,
                aggregate_id=alert.id,
                aggregate_version=alert.notice_version,
                recipient_id=recipient_id,
                channel=channel,
                purpose=purpose,
                language="en",
                context=context,
                correlation_id=correlation_id or current_correlation_id.get(),
            )
        )
        entries.append(
            TimelineRecord(
                kind="notified",
                at=now,
                notice_version=alert.notice_version,
                position=where,
                recipient_id=recipient_id,
                channel=channel,
                delivery_id=delivery_id,
                detail={"purpose": purpose},
            )
        )
    return transition.also(tuple(entries), deliveries=tuple(orders))


def order_context(
    message: RenderedMessage,
    *,
    notice_id: uuid.UUID,
    status: Status,
    position: EscalationPosition | None,
) -> dict[str, Any]:
    """What a delivery record keeps to render its message: releasable text and the step,
    and its notice's id (an outcome's event and line say it without reading the alert:
    `delivery/known.py`).

    Never an address (the plan reads it from the alert's frozen snapshot when it sends)
    and never the acknowledgement link (a credential, minted at send time).
    """
    return {
        "notice_id": str(notice_id),
        "headline": message.headline,
        "body": message.body,
        "status": status,
        "step": position.step if position is not None else None,
        "repeat": position.repeat if position is not None else None,
    }


def _render(
    deps: RouterDeps,
    alert: AlertRecord,
    *,
    purpose: Purpose,
    where: EscalationPosition | None,
    cancel_reason: str | None,
) -> RenderedMessage:
    return render_notification(
        alert_id=alert.id,
        notice_id=alert.notice_id,
        notice_version=alert.notice_version,
        status=alert.status,
        urgency=alert.urgency,
        content=alert.content,
        purpose=purpose,
        position=where,
        notice_url=deps.notice_url(alert.notice_id),
        console_url=deps.alert_page_url(alert.id),
        timezone=deps.timezone,
        horizon=deps.horizon,
        cancel_reason=cancel_reason,
    )


def _delivery_id(
    alert: AlertRecord,
    recipient_id: uuid.UUID,
    channel: str,
    purpose: Purpose,
    where: EscalationPosition | None,
) -> uuid.UUID:
    return delivery_id_for(
        alert_id=alert.id,
        notice_version=alert.notice_version,
        recipient_id=recipient_id,
        channel=channel,
        purpose=purpose,
        position=where,
    )
