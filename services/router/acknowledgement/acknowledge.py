"""Acknowledge: a recipient read a notice version, so escalation stops (twice is harmless)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from schemas.alerts import AckMethod
from services.common.logging import get_logger
from services.router import domain
from services.router.alerting.queries import require_alert
from services.router.deps import RouterDeps
from services.router.domain import AlertRecord
from services.router.errors import NotARecipient, StaleVersion
from services.router.metrics import TIME_TO_ACKNOWLEDGE
from services.router.observability import alert_fields, drill_label
from services.router.unit_of_work import RouterUoW

__all__ = ["AckResult", "acknowledge"]

log = get_logger(__name__)


@dataclass(frozen=True)
class AckResult:
    """The alert after an acknowledgement, and whether it had been acknowledged already."""

    alert: AlertRecord
    already: bool


async def acknowledge(
    uow: RouterUoW,
    *,
    deps: RouterDeps,
    alert_id: uuid.UUID,
    person_id: uuid.UUID,
    notice_version: int,
    method: AckMethod,
    comment: str | None = None,
) -> AckResult:
    """A recipient read `notice_version`: stop escalation (twice is harmless)."""
    now = deps.clock()
    alert = await require_alert(uow, alert_id, lock=True)
    fields = alert_fields(alert, recipient_id=str(person_id), method=method)
    try:
        transition = domain.acknowledge(
            alert,
            person_id=person_id,
            notice_version=notice_version,
            method=method,
            comment=comment,
            now=now,
        )
    except NotARecipient:
        log.warning("alert.ack_refused_not_recipient", **fields)
        raise
    except StaleVersion:
        log.info("alert.ack_refused_stale_version", **fields, acked_version=notice_version)
        raise
    if transition is None:
        if alert.state == "acknowledged":
            log.info("alert.ack_repeated", **fields)
        return AckResult(alert, already=True)
    await uow.alerts.apply(transition)
    waited = (now - alert.version_triggered_at).total_seconds()

    def committed() -> None:
        TIME_TO_ACKNOWLEDGE.labels(alert.urgency, drill_label(alert), method).observe(
            max(waited, 0.0)
        )
        log.info(
            "alert.acknowledged",
            **fields,
            step=alert.step,
            repeat=alert.repeat,
            previous_state=alert.state,
            seconds_to_ack=round(waited, 3),
            with_comment=bool(comment),
        )

    uow.after_commit(committed)
    return AckResult(transition.after, already=False)
