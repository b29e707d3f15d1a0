"""The alert aggregate: its states, what it says, where it stands in its escalation, its ids.

Escalation: step 0 is notified when the alert opens; when a step's wait passes without an
acknowledgement the next step is notified; after the last step the policy starts again
from step 0 `repeat` more times; when the last wait of the last pass ends unacknowledged
the alert is exhausted.

Alert states (`AlertState`)::

    triggered -> delivered -> escalated* -> acknowledged -> resolved
        \\______________________\\-> unacknowledged_exhausted -> acknowledged (late)
    any open or acknowledged state -(notice.updated)-> triggered (new version, step 0)
    any state -(notice.cancelled / window over)-> resolved
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime

from schemas.alerts import AckMethod, ResolutionReason, Urgency
from schemas.base import Status, is_drill
from services.router.domain.directory import FrozenModel, Snapshot

__all__ = [
    "ACKNOWLEDGEABLE_STATES",
    "OPEN_STATES",
    "AlertRecord",
    "AlertState",
    "AnnotationText",
    "EscalationPosition",
    "NoticeContent",
    "StepOutcome",
    "TimelineEntry",
    "TimelineKind",
    "alert_id_for",
    "delivery_id_for",
    "delivery_still_wanted",
    "drill_prefix",
    "first_position",
    "next_step",
    "notifies_current_step",
    "urgency_for",
    "window_over",
]

AlertState = Literal[
    "triggered",
    "delivered",
    "escalated",
    "acknowledged",
    "unacknowledged_exhausted",
    "resolved",
]
# Escalation timers run only in these states.
OPEN_STATES: frozenset[AlertState] = frozenset({"triggered", "delivered", "escalated"})
# A late acknowledgement of an exhausted alert is still worth recording.
ACKNOWLEDGEABLE_STATES: frozenset[AlertState] = OPEN_STATES | {"unacknowledged_exhausted"}

# What a timeline entry records.
TimelineKind = Literal[
    "triggered",
    "reopened",
    "notified",
    "delivered",
    "delivery_skipped",
    "delivery_failed",
    "delivery_report",  # what the SMS gateway reported: accepted, delivered, failed
    "escalated",
    "exhausted",
    "acknowledged",
    "resolved",
]

# Deterministic ids: the same notice always opens the same alert id, and the same
# delivery (alert, version, recipient, channel, purpose, step, pass) always has the
# same delivery id, so a redelivered request is recognisably the same delivery.
_ID_NAMESPACE = uuid.UUID("6f1c7d3e-2a8b-5c4d-9e0f-a1b2c3d4e5f6")

# --- escalation ---------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class EscalationPosition:
    """Where an alert stands in its frozen policy: a pass (`repeat`) and a step in it."""

    repeat: int
    step: int


@dataclass(frozen=True)
class StepOutcome:
    """What firing a timer does: notify the next position, or declare the policy exhausted."""

    position: EscalationPosition | None
    next_fire_at: datetime | None

    @property
    def exhausted(self) -> bool:
        return self.position is None


def first_position(snapshot: Snapshot, *, at: datetime) -> StepOutcome:
    """Step 0 of pass 0, notified now; its wait starts now."""
    return StepOutcome(EscalationPosition(0, 0), at + snapshot.wait(0))


def next_step(
    snapshot: Snapshot, current: EscalationPosition, *, fired_at: datetime
) -> StepOutcome:
    """The step after `current` once its wait ran out at `fired_at`.

    The next wait counts from when the timer really fired, not from the deadline: after
    an outage each person still gets their full wait to answer instead of a burst of
    catch-up notifications that exhausts the policy in seconds.
    """
    steps = len(snapshot.policy.steps)
    if current.step + 1 < steps:
        position = EscalationPosition(current.repeat, current.step + 1)
    elif current.repeat < snapshot.policy.repeat:
        position = EscalationPosition(current.repeat + 1, 0)
    else:
        return StepOutcome(None, None)
    return StepOutcome(position, fired_at + snapshot.wait(position.step))


# --- what the alert says (releasable content of the notice version) ------------------


class AnnotationText(FrozenModel):
    """A department policy statement shown with the notice."""

    code: str
    text: str


class NoticeContent(FrozenModel):
    """The releasable fields of one notice version: all a notification may say."""

    operation_type: str
    public_safety_nexus: bool
    window_start: AwareDatetime
    window_end: AwareDatetime
    area: str
    area_code: str | None = None
    summary: str
    policy_annotations: tuple[AnnotationText, ...] = ()


def delivery_still_wanted(
    *, state: AlertState, alert_version: int, request_version: int, purpose: str
) -> bool:
    """Whether a queued notification should still go out when the adapter gets to it.

    A cancellation always goes out. Anything else is dropped once the alert is
    acknowledged or resolved (acknowledging stops escalation, including messages
    already queued) or once a newer notice version superseded it.
    """
    if purpose == "cancel":
        return True
    if request_version < alert_version:
        return False
    return state not in ("acknowledged", "resolved")


def notifies_current_step(
    alert: AlertRecord,
    *,
    recipient_id: uuid.UUID,
    notice_version: int,
    position: EscalationPosition | None,
) -> bool:
    """Whether a notification is the one the alert's open step is waiting on.

    Only that one can make the step give up early: a failure towards an earlier step, an
    older version or someone told of an update only says nothing about the current wait.
    """
    return (
        alert.is_open
        and position == alert.position
        and notice_version == alert.notice_version
        and recipient_id == alert.snapshot.target(alert.step)
    )


# --- urgency, drills, expiry ---------------------------------------------------------------


def urgency_for(
    *, window_start: datetime, window_end: datetime, now: datetime, horizon: timedelta
) -> Literal["high", "normal"]:
    """High when the operation starts within `horizon` or is already under way."""
    if window_end <= now:
        return "normal"  # over: nothing left to act on (the alert resolves)
    return "high" if window_start - now <= horizon else "normal"


def window_over(window_end: datetime, now: datetime) -> bool:
    """A notice whose window has ended needs no alert (e.g. replayed history)."""
    return window_end <= now


def drill_prefix(status: Status) -> str:
    """`DRILL` in front of everything a drill sends."""
    return "DRILL " if is_drill(status) else ""


# --- ids ------------------------------------------------------------------------


def alert_id_for(notice_id: uuid.UUID) -> uuid.UUID:
    """One notice, one alert: its id is derived from the notice id."""
    return uuid.uuid5(_ID_NAMESPACE, f"alert:{notice_id}")


def delivery_id_for(
    *,
    alert_id: uuid.UUID,
    notice_version: int,
    recipient_id: uuid.UUID,
    channel: str,
    purpose: str,
    position: EscalationPosition | None,
) -> uuid.UUID:
    """The idempotency key of one message to one person on one channel."""
    where = "-" if position is None else f"{position.repeat}.{position.step}"
    name = f"delivery:{alert_id}:{notice_version}:{recipient_id}:{channel}:{purpose}:{where}"
    return uuid.uuid5(_ID_NAMESPACE, name)


# --- the alert, as stored -------------------------------------------------------------


@dataclass(frozen=True)
class AlertRecord:
    """One alert: the notice version it is about, who it reaches, and where it stands."""

    id: uuid.UUID
    notice_id: uuid.UUID
    notice_version: int
    status: Status
    state: AlertState
    urgency: Urgency
    content: NoticeContent
    snapshot: Snapshot
    step: int
    repeat: int
    escalation_count: int
    next_fire_at: datetime | None
    active_escalation_id: str | None
    correlation_id: str | None
    triggered_at: datetime
    version_triggered_at: datetime
    acknowledged_version: int | None
    acknowledged_by: uuid.UUID | None
    acknowledged_at: datetime | None
    ack_method: AckMethod | None
    exhausted_at: datetime | None
    expires_at: datetime
    resolved_at: datetime | None
    resolution: ResolutionReason | None
    updated_at: datetime

    @property
    def position(self) -> EscalationPosition:
        return EscalationPosition(self.repeat, self.step)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def drill(self) -> bool:
        return is_drill(self.status)


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to an alert, as stored."""

    id: int
    at: datetime
    kind: TimelineKind
    notice_version: int
    step: int | None
    repeat: int | None
    recipient_id: uuid.UUID | None
    channel: str | None
    method: str | None
    delivery_id: uuid.UUID | None
    detail: dict[str, Any]

    @property
    def position(self) -> EscalationPosition | None:
        """The escalation step this entry belongs to (None for a cancellation)."""
        if self.step is None:
            return None
        return EscalationPosition(self.repeat or 0, self.step)
