"""What the SMS gateway reports about a notification sent by SMS, recorded on the alert.

accepted / delivered -> the delivery record's `report`, timeline `delivery_report`
failed (handset)     -> the same, and the channel's failure as for any other channel:
                        another send later (timeline `delivery_failed`, final: false),
                        or failed for good (final: true) -> the step's next channel
                        or, when every channel of the step failed, the next step now
"""

from __future__ import annotations

from services.common.delivery.handset import ReportEffect, news_of
from services.common.delivery.sms_reports import DeliveryReport
from services.common.logging import get_logger
from services.router import domain
from services.router.delivery.notes import record_entry
from services.router.delivery.outcomes import record_attempt_failed, record_failed
from services.router.deps import RouterDeps
from services.router.unit_of_work import RouterUoW

__all__ = ["record_sms_report"]

log = get_logger(__name__)


async def record_sms_report(
    uow: RouterUoW, *, deps: RouterDeps, report: DeliveryReport
) -> ReportEffect | None:
    """Record a delivery report on its delivery and timeline; a handset failure fails it."""
    now = deps.clock()
    effect = await news_of(
        uow.deliveries, report, now=now, policy=deps.handset_policy, after_commit=uow.after_commit
    )
    if effect is None:
        return None
    record = effect.record
    alert = await uow.alerts.get(record.aggregate_id)
    if alert is not None:
        detail: dict[str, object] = {"status": report.status, "purpose": record.purpose}
        if report.smsc_error is not None:
            detail["smsc_error"] = report.smsc_error
        entry = record_entry(record, "delivery_report", at=now, detail=detail)
        await uow.alerts.apply(domain.record(alert, entry))
    failure = effect.failure
    if failure is not None and failure.final:
        await record_failed(uow, deps=deps, record=record, failure=failure)
    elif failure is not None:
        await record_attempt_failed(uow, deps=deps, record=record, failure=failure)
        uow.after_commit(deps.wake_delivery)
    alert_id = str(record.aggregate_id)
    delivery_id, status = report.delivery_id, report.status
    uow.after_commit(
        lambda: log.info(
            "sms.report_recorded", delivery_id=delivery_id, status=status, alert_id=alert_id
        )
    )
    return effect
