"""Delivering one of our delivery requests (Kafka): look the address up, add the receipt
link, send, record. To be replaced by the shared delivery engine."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from schemas.deliveries import DeliveryRequested
from services.common.delivery import DeliveryError
from services.common.logging import get_logger
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import DeliveryRow, TimelineRecord
from services.rumor_control.metrics import DELIVERIES
from services.rumor_control.unit_of_work import RumorControlUoW

__all__ = ["deliver"]

log = get_logger(__name__)

Outcome = Literal["sent", "failed", "skipped"]


def _step(request: DeliveryRequested, outcome: Outcome, at: datetime) -> TimelineRecord:
    detail = {
        "recipient_id": str(request.recipient_id),
        "channel": request.channel,
        "language": request.language,
        "delivery_id": str(request.delivery_id),
    }
    action: Literal["delivered", "delivery_failed"] = (
        "delivered" if outcome == "sent" else "delivery_failed"
    )
    return TimelineRecord(
        "bulletin", request.aggregate_id, action, None, at, request.aggregate_version, detail
    )


async def deliver(
    uow: RumorControlUoW, *, deps: RumorControlDeps, request: DeliveryRequested
) -> None:
    """Deliver one request of ours: look the address up, add the receipt link, send, record.

    A transient failure raises, so the consumer retries and finally dead-letters it; a
    permanent one (the receiver refused) is recorded and not retried.
    """
    if request.origin != "rumor_control":
        return  # router's requests are router's adapters' business
    if await uow.deliveries.done(request.delivery_id):
        return
    recipient = deps.department.recipient(request.recipient_id)
    outcome: Outcome = "sent"
    error: str | None = None
    if recipient is None:
        # Not ours any more (or another deployment's): nothing to send to.
        outcome, error = "skipped", "unknown_recipient"
    else:
        url = deps.receipt_url(request.aggregate_id, request.aggregate_version, recipient.id)
        try:
            await deps.sender.send(recipient, request, receipt_url=url)
        except DeliveryError as exc:
            if not exc.permanent:
                DELIVERIES.labels(request.channel, "retry").inc()
                raise
            outcome, error = "failed", str(exc)[:200]
    now = deps.clock()
    row = DeliveryRow(
        request.delivery_id, request.aggregate_id, request.aggregate_version,
        request.recipient_id, request.channel, request.language, request.purpose, outcome,
        error, now,
    )  # fmt: skip
    step = None if recipient is None else _step(request, outcome, now)
    await uow.deliveries.record_outcome(row, step)

    def delivered() -> None:
        DELIVERIES.labels(request.channel, outcome).inc()
        log.info(
            "bulletin.delivery",
            bulletin_id=str(request.aggregate_id),
            version=request.aggregate_version,
            recipient_id=str(request.recipient_id),
            channel=request.channel,
            outcome=outcome,
            error=error,
        )

    uow.after_commit(delivered)
