"""Escalation use cases: fire due timers (escalate or exhaust), expire an alert, look ahead.

The worker (`escalation.worker`) opens one unit of work per batch of timers and commits
it: one claim of up to N locked rows, then one `apply` per alert. Firing is a
compare-and-set on the alert's active escalation id (`domain.EscalationGuard`), the way
Grafana OnCall drops stale and duplicate escalation runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.common.cloudevents import correlation_scope
from services.common.logging import bound, get_logger
from services.router import domain
from services.router.alerting.notify import notify
from services.router.alerting.queries import require_alert
from services.router.deps import RouterDeps
from services.router.domain import ACKNOWLEDGEABLE_STATES, AlertRecord, Transition
from services.router.errors import TimerFailed
from services.router.metrics import (
    ALERTS_BY_STATE,
    ALERTS_EXHAUSTED,
    ESCALATIONS,
    OPEN_ALERTS,
    TIMER_LATENESS,
)
from services.router.observability import alert_fields, drill_label
from services.router.unit_of_work import RouterUoW

__all__ = [
    "FiredTimer",
    "TimerBatchFailed",
    "expire_next_alert",
    "fire_due_timers",
    "next_deadline",
    "refresh_alert_gauges",
]

log = get_logger(__name__)


@dataclass(frozen=True)
class FiredTimer:
    """What one timer did."""

    alert_id: uuid.UUID
    fired: bool
    exhausted: bool = False
    lateness_s: float = 0.0
    drill: bool = False


class TimerBatchFailed(Exception):
    """Writing a batch of fired timers failed, and no single alert can be blamed yet."""


async def fire_due_timers(
    uow: RouterUoW, *, deps: RouterDeps, limit: int, skip: Sequence[str] = ()
) -> list[FiredTimer]:
    """Fire up to `limit` due escalation timers, most overdue first.

    Raises TimerFailed naming the alert that failed (the caller rolls the batch back and
    fires it again without that alert, so one poison alert never holds the others back),
    or TimerBatchFailed when the batch's writes failed (the caller retries it alert by
    alert to find the culprit).
    """
    now = deps.clock()
    claimed = await uow.alerts.claim_due_timers(now=now, limit=limit, skip=skip)
    transitions = [_decide(deps, alert, now) for alert in claimed]
    try:
        applied = await uow.alerts.apply_all(transitions)
    except Exception as exc:
        if len(claimed) == 1:
            raise TimerFailed(claimed[0].id) from exc
        raise TimerBatchFailed(f"{len(claimed)} timers") from exc
    return [
        _fired(uow, alert, transition.after, now=now) if ok else FiredTimer(alert.id, fired=False)
        for alert, transition, ok in zip(claimed, transitions, applied, strict=True)
    ]


def _decide(deps: RouterDeps, alert: AlertRecord, now: datetime) -> Transition:
    """Escalate (and notify the next step) or exhaust; raises TimerFailed."""
    try:
        with correlation_scope(alert.correlation_id), bound(correlation_id=alert.correlation_id):
            # The escalation id read under the claim's lock is the one compared and set.
            transition = domain.fire_timer(alert, escalation_id=alert.active_escalation_id, now=now)
            after = transition.after
            if after.state == "unacknowledged_exhausted":
                return transition
            return notify(
                transition,
                deps=deps,
                recipient_id=alert.snapshot.target(after.step),
                purpose="escalation",
                now=now,
                correlation_id=alert.correlation_id,
            )
    except Exception as exc:
        raise TimerFailed(alert.id) from exc


def _fired(uow: RouterUoW, alert: AlertRecord, after: AlertRecord, *, now: datetime) -> FiredTimer:
    assert alert.next_fire_at is not None
    lateness = (now - alert.next_fire_at).total_seconds()
    uow.after_commit(lambda: _observe(alert, after, lateness=lateness))
    exhausted = after.state == "unacknowledged_exhausted"
    return FiredTimer(
        alert.id, fired=True, exhausted=exhausted, lateness_s=lateness, drill=alert.drill
    )


def _observe(alert: AlertRecord, after: AlertRecord, *, lateness: float) -> None:
    """Metrics and the log line of a timer that fired (after commit)."""
    TIMER_LATENESS.observe(max(lateness, 0.0))
    lateness_ms = round(lateness * 1000, 1)
    if after.state == "unacknowledged_exhausted":
        ALERTS_EXHAUSTED.labels(drill_label(alert)).inc()
        # Loud on purpose: nobody acknowledged an operation notice. Ops must act.
        log.error(
            "alert.exhausted",
            **alert_fields(alert, step=alert.step, repeat=alert.repeat),
            escalation_count=alert.escalation_count,
            lateness_ms=lateness_ms,
        )
        return
    ESCALATIONS.labels(drill_label(alert)).inc()
    log.info(
        "alert.escalated",
        **alert_fields(alert, step=after.step, repeat=after.repeat),
        recipient_id=str(alert.snapshot.target(after.step)),
        escalation_count=after.escalation_count,
        lateness_ms=lateness_ms,
        correlation_id=alert.correlation_id,
    )


async def expire_next_alert(
    uow: RouterUoW, *, deps: RouterDeps, skip: Sequence[str] = ()
) -> uuid.UUID | None:
    """Resolve one alert whose operation window has ended; raises TimerFailed."""
    now = deps.clock()
    alert_id = await uow.alerts.claim_due_expiry(now=now, skip=skip)
    if alert_id is None:
        return None
    try:
        alert = await require_alert(uow, alert_id)
        await uow.alerts.apply(domain.expire(alert, now=now))
    except Exception as exc:
        raise TimerFailed(alert_id) from exc
    uow.after_commit(
        lambda: log.info(
            "alert.resolved",
            **alert_fields(alert),
            reason="notice_expired",
            acknowledged=alert.state == "acknowledged",
            correlation_id=alert.correlation_id,
        )
    )
    return alert_id


async def next_deadline(uow: RouterUoW) -> datetime | None:
    """The earliest pending timer or expiry."""
    return await uow.alerts.next_deadline()


async def refresh_alert_gauges(uow: RouterUoW) -> dict[str, int]:
    """Recount alerts by state for the open-alerts gauge."""
    counts = await uow.alerts.count_by_state()
    for state in (*sorted(ACKNOWLEDGEABLE_STATES), "acknowledged", "resolved"):
        ALERTS_BY_STATE.labels(state).set(counts.get(state, 0))
    OPEN_ALERTS.set(sum(counts.get(state, 0) for state in ACKNOWLEDGEABLE_STATES))
    return counts
