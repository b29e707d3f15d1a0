"""What an outcome tells about its alert: the timeline entry, the event and the log line.

Shared by the two ways an outcome batch is decided: from the alerts as read
(`outcomes.decide_outcomes`) and, on the carried round, from what each delivery record
was given when its alert was opened (`known.decide_known`). Both say the same of an
outcome; only the alert's row change needs its state as it stands now.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.alerts import AlertDelivered, AlertDeliveryFailed
from schemas.base import Status, is_drill
from services.common.delivery import Delivered, DeliveryRecord, Failure, Skip, contract_reason
from services.common.logging import get_logger
from services.router.delivery.compose import position_of
from services.router.domain import AlertRecord, Publication, TimelineKind, TimelineRecord
from services.router.metrics import DELIVERIES, DELIVERY_FAILURES

__all__ = [
    "Subject",
    "Told",
    "delivered_told",
    "failure_told",
    "outcome_fields",
    "record_entry",
    "skipped_told",
]

# The lines kept the logger they were written under before this module was split out.
log = get_logger("services.router.delivery.outcomes")


@dataclass(frozen=True)
class Subject:
    """What an outcome's entry, event and log line say of its alert: its notice, status
    and current step (the step is said only of a message tied to none, a cancellation)."""

    id: uuid.UUID
    notice_id: uuid.UUID
    status: Status
    step: int

    @classmethod
    def of(cls, alert: AlertRecord) -> Subject:
        return cls(alert.id, alert.notice_id, alert.status, alert.step)


@dataclass(frozen=True)
class Told:
    """An outcome's timeline entry, its event (a skip has none) and its after-commit
    log line and metric."""

    entry: TimelineRecord
    publication: Publication | None
    committed: Callable[[], None]

    @property
    def events(self) -> tuple[Publication, ...]:
        return () if self.publication is None else (self.publication,)


def outcome_fields(
    record: DeliveryRecord, subject: Subject | None = None, **extra: Any
) -> dict[str, Any]:
    """An outcome's log fields (with its alert's notice and drill when known)."""
    if subject is not None:
        extra = {"notice_id": str(subject.notice_id), "drill": is_drill(subject.status), **extra}
    return {
        "alert_id": str(record.aggregate_id),
        "notice_version": record.aggregate_version,
        "delivery_id": str(record.delivery_id),
        "recipient_id": str(record.recipient_id),
        "channel": record.channel,
        "purpose": record.purpose,
        # The engine runs outside any request or message: the notice's chain is here.
        "correlation_id": record.correlation_id,
        **extra,
    }


def record_entry(
    record: DeliveryRecord, kind: TimelineKind, *, at: datetime, detail: dict[str, Any]
) -> TimelineRecord:
    """The alert's timeline entry of `kind` for what happened to `record`'s delivery."""
    return TimelineRecord(
        kind=kind,
        at=at,
        notice_version=record.aggregate_version,
        position=position_of(record),
        recipient_id=record.recipient_id,
        channel=record.channel,
        delivery_id=record.delivery_id,
        detail=detail,
    )


def _status(record: DeliveryRecord, subject: Subject) -> Status:
    status: Status = record.context.get("status", subject.status)
    return status


def _step(record: DeliveryRecord, subject: Subject) -> int:
    position = position_of(record)
    return position.step if position is not None else subject.step


def delivered_told(
    subject: Subject, record: DeliveryRecord, result: Delivered, *, now: datetime
) -> Told:
    """The receiver accepted the notification: the proof, alert.delivered."""
    step = _step(record, subject)
    event = AlertDelivered(
        alert_id=subject.id,
        notice_id=subject.notice_id,
        notice_version=record.aggregate_version,
        status=_status(record, subject),
        step=step,
        recipient_id=record.recipient_id,
        channel=record.channel,
        attempts=result.attempts,
        delivered_at=now,
    )
    detail = {"attempts": result.attempts, "purpose": record.purpose}

    def committed() -> None:
        DELIVERIES.labels(record.channel).inc()
        fields = outcome_fields(record, subject, step=step, attempts=result.attempts)
        log.info("alert.delivered", **fields)

    entry = record_entry(record, "delivered", at=now, detail=detail)
    return Told(entry, Publication(event, record.correlation_id), committed)


def failure_told(
    subject: Subject,
    record: DeliveryRecord,
    failure: Failure,
    *,
    now: datetime,
    step_unreachable: bool,
) -> Told:
    """The failure's timeline entry and alert.delivery_failed, its log line and metric."""
    reason = contract_reason(failure.reason)
    # The contract counts attempts from 1; a message given up while its destination's
    # breaker was open never reached the network, and is reported as its first attempt.
    attempts = max(failure.attempts, 1)
    detail: dict[str, Any] = {
        "reason": reason,
        "attempt": failure.attempts,
        "final": failure.final,
        "purpose": record.purpose,
    }
    if failure.retry_at is not None:
        detail["retry_at"] = failure.retry_at.isoformat()
    if step_unreachable:
        detail["step_unreachable"] = True
    event = AlertDeliveryFailed(
        alert_id=subject.id,
        notice_id=subject.notice_id,
        notice_version=record.aggregate_version,
        status=_status(record, subject),
        step=_step(record, subject),
        recipient_id=record.recipient_id,
        channel=record.channel,
        reason=reason,
        attempts=attempts,
        final=failure.final,
        failed_at=now,
    )
    final = str(failure.final).lower()

    def committed() -> None:
        DELIVERY_FAILURES.labels(record.channel, reason, final).inc()
        fields = outcome_fields(
            record, subject, reason=reason, attempt=failure.attempts, final=failure.final
        )
        if failure.final:
            log.error("alert.delivery_failed", **fields)
        else:
            log.warning("alert.delivery_attempt_failed", **fields)

    entry = record_entry(record, "delivery_failed", at=now, detail=detail)
    return Told(entry, Publication(event, record.correlation_id), committed)


def skipped_told(subject: Subject, record: DeliveryRecord, skip: Skip, *, now: datetime) -> Told:
    """Nothing was sent because the notification is no longer wanted: an entry, no event."""
    detail = {"reason": skip.reason, **skip.detail}

    def committed() -> None:
        fields = outcome_fields(record, subject, skip_reason=skip.reason)
        log.info("alert.delivery_skipped", **fields)

    return Told(record_entry(record, "delivery_skipped", at=now, detail=detail), None, committed)
