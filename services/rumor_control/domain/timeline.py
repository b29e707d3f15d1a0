"""One step on a rumor's or bulletin's timeline, as a transition records it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from services.rumor_control.domain.rules import Actor

__all__ = ["Aggregate", "TimelineAction", "TimelineRecord"]

Aggregate = Literal["rumor", "bulletin"]
TimelineAction = Literal[
    "reported",
    "assessed",
    "drafted",
    "redrafted",
    "edited",
    "guardrails_rechecked",
    "signed_off",
    "approved",
    "published",
    "rejected",
    "retracted",
    "superseded",
    "withdrawn",
    "flagged",
    "delivered",
    "delivery_failed",
    "delivery_skipped",
    "delivery_report",
    "receipt_confirmed",
]


@dataclass(frozen=True)
class TimelineRecord:
    """What the audit log keeps of one step: ids and reason codes only, never text."""

    aggregate: Aggregate
    aggregate_id: uuid.UUID
    action: TimelineAction
    actor: Actor | None
    at: datetime
    version: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
