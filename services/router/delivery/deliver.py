"""The channel adapter use case: send one requested message on one channel, once.

Consumes aviso.deliveries.v1 inside the consumer's unit of work. The delivery id is the
idempotency key (a claimed row in `alert_deliveries`); the outcome is recorded on the
alert's timeline and, once delivered, as alert.delivered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.alerts import AlertDelivered
from schemas.base import is_drill
from schemas.deliveries import DeliveryRequested
from services.common.cloudevents import current_correlation_id
from services.common.logging import get_logger
from services.router import domain
from services.router.acknowledgement.links import ack_link
from services.router.delivery.adapters import DeliveryError
from services.router.deps import RouterDeps
from services.router.domain import (
    AlertRecord,
    EscalationPosition,
    Publication,
    TimelineKind,
    TimelineRecord,
)
from services.router.messages import render_footer
from services.router.metrics import DELIVERIES, DELIVERY_FAILURES
from services.router.repository import DeliveryClaim
from services.router.unit_of_work import RouterUoW

__all__ = ["compose", "deliver"]

log = get_logger(__name__)


def compose(
    deps: RouterDeps, alert: AlertRecord, request: DeliveryRequested, now: datetime
) -> tuple[str, dict[str, Any]]:
    """The text and webhook payload: the releasable request plus the one-click link."""
    ack_url: str | None = None
    ack_expires: datetime | None = None
    if request.purpose != "cancel" and alert.snapshot.may_acknowledge(request.recipient_id):
        ack_url, ack_expires = ack_link(
            deps,
            alert_id=alert.id,
            version=request.aggregate_version,
            person_id=request.recipient_id,
            now=now,
        )
    correlation_id = current_correlation_id.get()
    text = request.body + render_footer(
        ack_url=ack_url,
        ack_expires_at=ack_expires,
        correlation_id=correlation_id,
        delivery_id=request.delivery_id,
        timezone=deps.timezone,
    )
    payload = {
        "type": "aviso.alert.notification",
        "delivery_id": str(request.delivery_id),
        "purpose": request.purpose,
        "alert_id": str(alert.id),
        "notice_id": str(alert.notice_id),
        "notice_version": request.aggregate_version,
        "status": request.status,
        "drill": is_drill(request.status),
        "urgency": alert.urgency,
        "recipient_id": str(request.recipient_id),
        "headline": request.headline,
        "text": text,
        "ack_url": ack_url,
        "ack_expires_at": ack_expires.isoformat() if ack_expires else None,
        "notice_url": deps.notice_url(alert.notice_id),
        # The webhook sender takes no extra headers, so the correlation id rides inside.
        "correlation_id": correlation_id,
        "sent_at": now.isoformat(),
    }
    return text, payload


def _entry(
    request: DeliveryRequested,
    kind: TimelineKind,
    *,
    at: datetime,
    position: EscalationPosition | None,
    detail: dict[str, Any],
) -> TimelineRecord:
    return TimelineRecord(
        kind=kind,
        at=at,
        notice_version=request.aggregate_version,
        position=position,
        recipient_id=request.recipient_id,
        channel=request.channel,
        delivery_id=request.delivery_id,
        detail=detail,
    )


async def deliver(uow: RouterUoW, *, deps: RouterDeps, request: DeliveryRequested) -> None:
    """delivery.requested: send one message on one channel, once, and record the proof."""
    if request.origin != "router":
        return  # rumor_control's adapters deliver bulletins
    now = deps.clock()
    fields: dict[str, Any] = {
        "alert_id": str(request.aggregate_id),
        "notice_version": request.aggregate_version,
        "delivery_id": str(request.delivery_id),
        "recipient_id": str(request.recipient_id),
        "channel": request.channel,
        "purpose": request.purpose,
    }
    alert = await uow.alerts.get(request.aggregate_id)
    if alert is None:
        log.warning("alert.delivery_for_unknown_alert", **fields)
        return
    fields["notice_id"] = str(alert.notice_id)
    requested = await uow.alerts.notified_entry(alert.id, delivery_id=request.delivery_id)
    if requested is None or requested.recipient_id != request.recipient_id:
        # Only what this router recorded asking for is sent: a request on the topic that
        # it never made (another deployment's, or forged) must not reach anyone.
        log.warning("alert.delivery_request_unknown", **fields)
        return
    position = requested.position
    claim = DeliveryClaim(
        delivery_id=request.delivery_id,
        alert_id=alert.id,
        notice_version=request.aggregate_version,
        purpose=request.purpose,
        recipient_id=request.recipient_id,
        channel=request.channel,
    )
    if not domain.delivery_still_wanted(
        state=alert.state,
        alert_version=alert.notice_version,
        request_version=request.aggregate_version,
        purpose=request.purpose,
    ):
        if await uow.deliveries.claim(claim, outcome="skipped", at=now):
            detail = {"state": alert.state, "current_version": alert.notice_version}
            skipped = _entry(request, "delivery_skipped", at=now, position=position, detail=detail)
            await uow.alerts.apply(domain.record(alert, skipped))
        uow.after_commit(lambda: log.info("alert.delivery_skipped", **fields, state=alert.state))
        return
    # The delivery id is the idempotency key: a second sight never sends again.
    if not await uow.deliveries.claim(claim, outcome="sending", at=now):
        log.info("alert.delivery_duplicate_skipped", **fields)
        return
    await _send(uow, deps, alert, request, position, fields, now)


async def _send(
    uow: RouterUoW,
    deps: RouterDeps,
    alert: AlertRecord,
    request: DeliveryRequested,
    position: EscalationPosition | None,
    fields: dict[str, Any],
    now: datetime,
) -> None:
    recipient = alert.snapshot.recipient(request.recipient_id)
    address = recipient.channels.address(request.channel) if recipient else None
    text, payload = compose(deps, alert, request, now)
    attempt = deps.channels.count_attempt(request.delivery_id)
    try:
        if address is None:
            raise DeliveryError("no address for this channel in the snapshot", permanent=True)
        await deps.channels.send(
            channel=request.channel,
            address=address,
            subject=request.headline,
            text=text,
            payload=payload,
            delivery_id=request.delivery_id,
            language=request.language,
        )
    except DeliveryError as exc:
        DELIVERY_FAILURES.labels(request.channel, str(exc.permanent).lower()).inc()
        if not exc.permanent:
            # Raising rolls the claim back; the consumer retries with backoff, then the DLQ.
            log.warning("alert.delivery_retrying", **fields, attempt=attempt, error=str(exc))
            raise
        deps.channels.forget(request.delivery_id)
        error = str(exc)[:200]
        await uow.deliveries.finish(
            request.delivery_id, outcome="failed", attempts=attempt, at=now, error=error
        )
        detail = {"error": error, "attempts": attempt, "permanent": True}
        failed = _entry(request, "delivery_failed", at=now, position=position, detail=detail)
        await uow.alerts.apply(domain.record(alert, failed))
        message = str(exc)  # `exc` is unbound once this block ends
        uow.after_commit(
            lambda: log.error("alert.delivery_failed", **fields, attempts=attempt, error=message)
        )
        return
    deps.channels.forget(request.delivery_id)
    await _delivered(uow, deps, alert, request, position, fields, attempt)


async def _delivered(
    uow: RouterUoW,
    deps: RouterDeps,
    alert: AlertRecord,
    request: DeliveryRequested,
    position: EscalationPosition | None,
    fields: dict[str, Any],
    attempt: int,
) -> None:
    delivered_at = deps.clock()
    await uow.deliveries.finish(
        request.delivery_id, outcome="delivered", attempts=attempt, at=delivered_at
    )
    step = position.step if position else alert.step
    detail = {"attempts": attempt, "purpose": request.purpose}
    event = AlertDelivered(
        alert_id=alert.id,
        notice_id=alert.notice_id,
        notice_version=request.aggregate_version,
        status=request.status,
        step=step,
        recipient_id=request.recipient_id,
        channel=request.channel,
        attempts=attempt,
        delivered_at=delivered_at,
    )
    entry = _entry(request, "delivered", at=delivered_at, position=position, detail=detail)
    if request.purpose != "cancel":
        # triggered -> delivered (only for the version this message carried)
        marked = domain.mark_delivered(
            alert, notice_version=request.aggregate_version, at=delivered_at
        )
        await uow.alerts.apply(marked)
    await uow.alerts.apply(domain.record(alert, entry, events=(Publication(event),)))

    def committed() -> None:
        DELIVERIES.labels(request.channel).inc()
        log.info("alert.delivered", **fields, step=step, attempts=attempt)

    uow.after_commit(committed)
