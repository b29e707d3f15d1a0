"""Typed state changes of an alert: each decision returns the new row with what it records.

A decision here does no I/O. It returns a `Transition` (`domain.changes`): the alert
before and after, an optional guard (a compare-and-set the stored row must still pass),
the timeline entries and the events to publish. The repository applies all of it in one
call (`uow.alerts.apply(transition)`), so a row never changes without its timeline entry
and its outbox event, and nobody writes those three by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from schemas.alerts import (
    AckMethod,
    AlertAcknowledged,
    AlertEscalated,
    AlertResolved,
    AlertTriggered,
    ResolutionReason,
)
from schemas.base import Status
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from services.router.domain.alert import (
    ACKNOWLEDGEABLE_STATES,
    OPEN_STATES,
    AlertRecord,
    AnnotationText,
    NoticeContent,
    StepOutcome,
    alert_id_for,
    first_position,
    next_step,
    urgency_for,
)
from services.router.domain.changes import (
    EscalationGuard,
    Guard,
    Publication,
    TimelineRecord,
    Transition,
    VersionGuard,
)
from services.router.domain.directory import DirectoryVersion, snapshot_directory
from services.router.errors import AlertClosed, NotARecipient, StaleVersion, UnknownVersion

__all__ = [
    "acknowledge",
    "cancel",
    "content_of",
    "delivered_unread",
    "escalate_now",
    "expire",
    "fire_timer",
    "mark_delivered",
    "open_alert",
    "reopen",
]


def content_of(notice: NoticeReceived | NoticeUpdated) -> NoticeContent:
    """The releasable fields of a notice version: all an alert may say."""
    return NoticeContent(
        operation_type=notice.operation_type,
        public_safety_nexus=notice.public_safety_nexus,
        window_start=notice.window_start,
        window_end=notice.window_end,
        area=notice.area,
        area_code=notice.area_code,
        summary=notice.summary,
        policy_annotations=tuple(
            AnnotationText(code=a.code, text=a.text) for a in notice.policy_annotations
        ),
    )


def _triggered_event(
    alert: AlertRecord, cause: Literal["notice.received", "notice.updated"], now: datetime
) -> AlertTriggered:
    return AlertTriggered(
        alert_id=alert.id,
        notice_id=alert.notice_id,
        notice_version=alert.notice_version,
        status=alert.status,
        cause=cause,
        urgency=alert.urgency,
        step=0,
        recipient_id=alert.snapshot.target(0),
        delegated=alert.snapshot.delegated,
        triggered_at=now,
    )


def open_alert(
    notice: NoticeReceived | NoticeUpdated,
    *,
    directory: DirectoryVersion,
    now: datetime,
    horizon: timedelta,
    correlation_id: str | None,
) -> Transition:
    """(nothing) -> triggered: freeze who is reached and start step 0's wait."""
    cause: Literal["notice.received", "notice.updated"] = (
        "notice.received" if isinstance(notice, NoticeReceived) else "notice.updated"
    )
    snapshot = snapshot_directory(directory.document, version=directory.version, at=now)
    start = first_position(snapshot, at=now)
    alert = AlertRecord(
        id=alert_id_for(notice.notice_id),
        notice_id=notice.notice_id,
        notice_version=notice.version,
        status=notice.status,
        state="triggered",
        urgency=urgency_for(
            window_start=notice.window_start, window_end=notice.window_end, now=now, horizon=horizon
        ),
        content=content_of(notice),
        snapshot=snapshot,
        step=0,
        repeat=0,
        escalation_count=0,
        next_fire_at=start.next_fire_at,
        active_escalation_id=str(uuid.uuid4()),
        correlation_id=correlation_id,
        triggered_at=now,
        version_triggered_at=now,
        acknowledged_version=None,
        acknowledged_by=None,
        acknowledged_at=None,
        ack_method=None,
        exhausted_at=None,
        expires_at=notice.window_end,
        resolved_at=None,
        resolution=None,
        updated_at=now,
    )
    entry = TimelineRecord(
        kind="triggered",
        at=now,
        notice_version=notice.version,
        position=alert.position,
        recipient_id=snapshot.target(0),
        detail={
            "cause": cause,
            "urgency": alert.urgency,
            "status": notice.status,
            "directory_version": directory.version,
            "spoc_id": str(snapshot.spoc_id),
            "delegated": snapshot.delegated,
        },
    )
    return Transition(None, alert, (entry,), (Publication(_triggered_event(alert, cause, now)),))


def reopen(
    alert: AlertRecord,
    *,
    notice: NoticeUpdated,
    now: datetime,
    horizon: timedelta,
    correlation_id: str | None,
) -> Transition:
    """triggered | delivered | escalated | acknowledged | unacknowledged_exhausted -> triggered.

    The frozen snapshot stays: the alert keeps reaching the people it reached. A fresh
    active escalation id stops any timer of the previous version still in flight.
    """
    start = first_position(alert.snapshot, at=now)
    after = replace(
        alert,
        notice_version=notice.version,
        status=notice.status,
        state="triggered",
        urgency=urgency_for(
            window_start=notice.window_start, window_end=notice.window_end, now=now, horizon=horizon
        ),
        content=content_of(notice),
        step=0,
        repeat=0,
        next_fire_at=start.next_fire_at,
        active_escalation_id=str(uuid.uuid4()),
        # Escalations of the new version carry the update's correlation id.
        correlation_id=correlation_id or alert.correlation_id,
        version_triggered_at=now,
        exhausted_at=None,
        expires_at=notice.window_end,
        updated_at=now,
    )
    entry = TimelineRecord(
        kind="reopened",
        at=now,
        notice_version=notice.version,
        position=after.position,
        recipient_id=after.snapshot.target(0),
        detail={
            "previous_version": alert.notice_version,
            "previous_state": alert.state,
            "urgency": after.urgency,
        },
    )
    event = Publication(_triggered_event(after, "notice.updated", now))
    return Transition(alert, after, (entry,), (event,))


def _resolve(
    alert: AlertRecord,
    *,
    reason: ResolutionReason,
    notice_version: int,
    status: Status,
    now: datetime,
    detail: Mapping[str, Any],
    correlation_id: str | None,
) -> Transition:
    # any unresolved state -> resolved
    acknowledged = alert.state == "acknowledged"
    after = replace(
        alert,
        notice_version=notice_version,
        status=status,
        state="resolved",
        resolution=reason,
        resolved_at=now,
        next_fire_at=None,
        active_escalation_id=None,
        updated_at=now,
    )
    entry = TimelineRecord(
        kind="resolved",
        at=now,
        notice_version=notice_version,
        detail={"reason": reason, **detail, "acknowledged": acknowledged},
    )
    event = AlertResolved(
        alert_id=alert.id,
        notice_id=alert.notice_id,
        notice_version=notice_version,
        status=status,
        reason=reason,
        acknowledged=acknowledged,
        resolved_at=now,
    )
    return Transition(alert, after, (entry,), (Publication(event, correlation_id),))


def cancel(alert: AlertRecord, *, notice: NoticeCancelled, now: datetime) -> Transition:
    """The field office cancelled the notice: resolve, stop escalation."""
    return _resolve(
        alert,
        reason="notice_cancelled",
        notice_version=notice.version,
        status=notice.status,
        now=now,
        detail={"cancel_reason": notice.reason},
        correlation_id=None,
    )


def expire(alert: AlertRecord, *, now: datetime) -> Transition:
    """The operation window ended: nothing is left to escalate for."""
    return _resolve(
        alert,
        reason="notice_expired",
        notice_version=alert.notice_version,
        status=alert.status,
        now=now,
        detail={},
        correlation_id=alert.correlation_id,
    )


def _already_acknowledged(alert: AlertRecord, *, person_id: uuid.UUID, notice_version: int) -> bool:
    """Whether `person_id` acknowledging `notice_version` is a repeat; raises if refused."""
    if not alert.snapshot.may_acknowledge(person_id):
        raise NotARecipient(str(person_id))
    if alert.state == "resolved":
        if alert.acknowledged_version == notice_version:
            return True
        raise AlertClosed(resolution=alert.resolution)
    if notice_version < alert.notice_version:
        raise StaleVersion(
            current_version=alert.notice_version, alert_id=alert.id, notice_id=alert.notice_id
        )
    if notice_version > alert.notice_version:
        raise UnknownVersion(current_version=alert.notice_version)
    if alert.state == "acknowledged":
        return True
    assert alert.state in ACKNOWLEDGEABLE_STATES
    return False


def acknowledge(
    alert: AlertRecord,
    *,
    person_id: uuid.UUID,
    notice_version: int,
    method: AckMethod,
    comment: str | None,
    now: datetime,
) -> Transition | None:
    """A recipient read `notice_version`: the transition, or None if it was acknowledged already.

    Raises NotARecipient, AlertClosed, StaleVersion or UnknownVersion when it must be refused.
    """
    if _already_acknowledged(alert, person_id=person_id, notice_version=notice_version):
        return None
    # triggered | delivered | escalated | unacknowledged_exhausted -> acknowledged
    # Clearing the active escalation id is what stops a timer already in flight.
    after = replace(
        alert,
        state="acknowledged",
        acknowledged_version=notice_version,
        acknowledged_by=person_id,
        acknowledged_at=now,
        ack_method=method,
        next_fire_at=None,
        active_escalation_id=None,
        updated_at=now,
    )
    # The comment is free text: it stays in router, shown to contacts and admins.
    detail: dict[str, Any] = {"previous_state": alert.state}
    if comment:
        detail = {"comment": comment, **detail}
    entry = TimelineRecord(
        kind="acknowledged",
        at=now,
        notice_version=notice_version,
        position=alert.position,
        recipient_id=person_id,
        method=method,
        detail=detail,
    )
    event = AlertAcknowledged(
        alert_id=alert.id,
        notice_id=alert.notice_id,
        notice_version=notice_version,
        status=alert.status,
        acknowledged_by=person_id,
        method=method,
        step=alert.step,
        acknowledged_at=now,
    )
    # The acknowledgement belongs to the notice's chain (its standby bulletin is drafted
    # from it), not to the click that carried it: keep the notice's correlation id.
    return Transition(alert, after, (entry,), (Publication(event, alert.correlation_id),))


def fire_timer(alert: AlertRecord, *, escalation_id: str | None, now: datetime) -> Transition:
    """A step's wait ran out unacknowledged: escalate to the next step, or exhaust the policy."""
    assert alert.next_fire_at is not None
    lateness_ms = round((now - alert.next_fire_at).total_seconds() * 1000, 1)
    guard = EscalationGuard(OPEN_STATES, escalation_id)
    outcome = next_step(alert.snapshot, alert.position, fired_at=now)
    if outcome.position is None:
        return _exhaust(alert, now=now, guard=guard)
    return _escalate(alert, outcome, now=now, guard=guard, lateness_ms=lateness_ms)


def _exhaust(alert: AlertRecord, *, now: datetime, guard: Guard) -> Transition:
    # triggered | delivered | escalated -> unacknowledged_exhausted
    after = replace(
        alert,
        state="unacknowledged_exhausted",
        next_fire_at=None,
        active_escalation_id=None,
        exhausted_at=now,
        updated_at=now,
    )
    entry = TimelineRecord(
        kind="exhausted",
        at=now,
        notice_version=alert.notice_version,
        position=alert.position,
        detail={"escalation_count": alert.escalation_count},
    )
    return Transition(alert, after, (entry,), guard=guard)


def _escalate(
    alert: AlertRecord, outcome: StepOutcome, *, now: datetime, guard: Guard, lateness_ms: float
) -> Transition:
    position = outcome.position
    assert position is not None
    # triggered | delivered | escalated -> escalated
    # A fresh active escalation id: whoever still holds the old one can no longer fire.
    after = replace(
        alert,
        state="escalated",
        step=position.step,
        repeat=position.repeat,
        escalation_count=alert.escalation_count + 1,
        next_fire_at=outcome.next_fire_at,
        active_escalation_id=str(uuid.uuid4()),
        updated_at=now,
    )
    recipient = alert.snapshot.target(position.step)
    entry = TimelineRecord(
        kind="escalated",
        at=now,
        notice_version=alert.notice_version,
        position=position,
        recipient_id=recipient,
        detail={"escalation_count": after.escalation_count, "lateness_ms": lateness_ms},
    )
    event = AlertEscalated(
        alert_id=alert.id,
        notice_id=alert.notice_id,
        notice_version=alert.notice_version,
        status=alert.status,
        step=position.step,
        repeat=position.repeat,
        escalation_count=after.escalation_count,
        recipient_id=recipient,
        escalated_at=now,
    )
    return Transition(
        alert, after, (entry,), (Publication(event, alert.correlation_id),), guard=guard
    )


def mark_delivered(alert: AlertRecord, *, notice_version: int, at: datetime) -> Transition | None:
    """triggered -> delivered, only for the version the delivered message carried.

    None when the alert as read is past it (another channel's message marked it, or it
    was acknowledged) or holds another version: the guard could not pass, since an alert
    comes back to `triggered` only with a newer version. Asked anyway, the UPDATE matched
    no row and set nothing but `updated_at` (a notice's second channel, settled in a
    later round than its first).
    """
    guard, values = delivered_unread(notice_version=notice_version, at=at)
    if alert.state not in guard.states or alert.notice_version != notice_version:
        return None
    after = replace(alert, **values)
    return Transition(alert, after, guard=guard)


def delivered_unread(*, notice_version: int, at: datetime) -> tuple[VersionGuard, dict[str, Any]]:
    """triggered -> delivered for an alert not read: the guard and the columns it sets,
    as `mark_delivered` decides them. Written under the guard, it changes the alert only
    where `mark_delivered` would have (an alert past it, or at another version, is left
    as it is)."""
    return VersionGuard(frozenset({"triggered"}), notice_version), {
        "state": "delivered",
        "updated_at": at,
    }


def escalate_now(alert: AlertRecord, *, now: datetime) -> Transition | None:
    """The current step cannot be reached at all: its timer is due now, not after `wait_s`.

    None when there is nothing to hasten (the alert is no longer open, or its timer is
    due already). The same compare-and-set as the timer itself (the active escalation
    id): whichever instance records the step's last failure, the step escalates once, and
    the escalation worker fires it like any other due timer.
    """
    if alert.state not in OPEN_STATES or alert.next_fire_at is None or alert.next_fire_at <= now:
        return None
    after = replace(alert, next_fire_at=now, updated_at=now)
    return Transition(alert, after, guard=EscalationGuard(OPEN_STATES, alert.active_escalation_id))
