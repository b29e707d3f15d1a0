"""What the SMS gateway reports about a bulletin sent by SMS, recorded on the bulletin.

accepted / delivered -> the delivery record's `report`, timeline `delivery_report`
failed (handset)     -> the same, and the attempt's failure as for any other channel:
                        sent again later (timeline `delivery_failed`, final: false) or
                        failed for good (final: true); `bulletin.delivery_failed` either way
"""

from __future__ import annotations

from dataclasses import replace

from services.common.delivery.handset import ReportEffect, news_of
from services.common.delivery.sms_reports import DeliveryReport
from services.common.logging import get_logger
from services.rumor_control.delivery.plan import bulletin_delivery, failed_step
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import delivery as delivery_outcomes
from services.rumor_control.unit_of_work import RumorControlUoW

__all__ = ["record_sms_report"]

log = get_logger(__name__)


async def record_sms_report(
    uow: RumorControlUoW, *, deps: RumorControlDeps, report: DeliveryReport
) -> ReportEffect | None:
    """Record a delivery report on its delivery and the bulletin's timeline; a handset
    failure fails the attempt (retried, or final)."""
    now = deps.clock()
    effect = await news_of(
        uow.deliveries, report, now=now, policy=deps.handset_policy, after_commit=uow.after_commit
    )
    if effect is None:
        return None
    delivery = bulletin_delivery(effect.record)
    transition = delivery_outcomes.delivery_reported(
        delivery, status=report.status, smsc_error=report.smsc_error, at=now
    )
    failure = effect.failure
    if failure is not None:
        step = failed_step(delivery, failure)
        if step.transition is not None:
            transition = replace(
                transition,
                timeline=transition.timeline + step.transition.timeline,
                events=transition.events + step.transition.events,
            )
        uow.after_commit(step.observe)
        if not failure.final:
            uow.after_commit(deps.wake_delivery)  # delivered -> pending: due at retry_at
    await uow.bulletins.apply(transition)
    bulletin_id = str(delivery.bulletin_id)
    delivery_id, status = report.delivery_id, report.status
    uow.after_commit(
        lambda: log.info(
            "sms.report_recorded", delivery_id=delivery_id, status=status, bulletin_id=bulletin_id
        )
    )
    return effect
