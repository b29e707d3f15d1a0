"""What a decided change of an alert consists of: a `Transition` and its parts.

A decision (`domain.transitions`) returns a Transition; the repository applies it in one
call: the row change (guarded by a compare-and-set where it must be), the timeline
entries, the outbox events and the delivery orders (rows of the delivery engine's
durable queue) together, or nothing at all when the guard fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from schemas.alerts import AckMethod
from schemas.base import EventData
from services.common.delivery.records import DeliveryOrder
from services.router.domain.alert import (
    AlertRecord,
    AlertState,
    EscalationPosition,
    TimelineKind,
)
from services.router.domain.directory import ChannelKind

__all__ = [
    "EscalationGuard",
    "Guard",
    "Publication",
    "TimelineRecord",
    "Transition",
    "VersionGuard",
    "record",
]


@dataclass(frozen=True)
class TimelineRecord:
    """One entry to append to the alert's timeline."""

    kind: TimelineKind
    at: datetime
    notice_version: int
    position: EscalationPosition | None = None
    recipient_id: uuid.UUID | None = None
    channel: ChannelKind | None = None
    method: AckMethod | None = None
    delivery_id: uuid.UUID | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Publication:
    """An event to put in the outbox with the change (published after commit)."""

    event: EventData
    # None: the correlation id of whatever is being handled (the request or the message).
    correlation_id: str | None = None


@dataclass(frozen=True)
class EscalationGuard:
    """Apply only while the alert is in `states` and still carries `escalation_id`.

    The compare-and-set that makes a timer fire once: a second router that read the same
    due row, or a stale run after an ack or a notice update, matches no row.
    """

    states: frozenset[AlertState]
    escalation_id: str | None


@dataclass(frozen=True)
class VersionGuard:
    """Apply only while the alert is in `states` and at `notice_version`."""

    states: frozenset[AlertState]
    notice_version: int


Guard = EscalationGuard | VersionGuard


@dataclass(frozen=True)
class Transition:
    """A decided change: `before` -> `after` (None before: a new alert), plus its records."""

    before: AlertRecord | None
    after: AlertRecord
    timeline: tuple[TimelineRecord, ...] = ()
    events: tuple[Publication, ...] = ()
    guard: Guard | None = None
    # Messages to deliver, accepted by the delivery engine in the same transaction.
    deliveries: tuple[DeliveryOrder, ...] = ()

    def also(
        self,
        timeline: tuple[TimelineRecord, ...] = (),
        events: tuple[Publication, ...] = (),
        deliveries: tuple[DeliveryOrder, ...] = (),
    ) -> Transition:
        """The same change, recording, publishing and delivering more (its notifications)."""
        return replace(
            self,
            timeline=self.timeline + timeline,
            events=self.events + events,
            deliveries=self.deliveries + deliveries,
        )


def record(
    alert: AlertRecord, *entries: TimelineRecord, events: tuple[Publication, ...] = ()
) -> Transition:
    """No change to the row: only timeline entries (and events) about it."""
    return Transition(before=alert, after=alert, timeline=entries, events=events)
