"""Escalation: fire durable timers in batches (escalate or exhaust), expire alerts, the worker."""

from __future__ import annotations

from services.router.escalation.timers import (
    FiredTimer,
    TimerBatchFailed,
    expire_next_alert,
    fire_due_timers,
    next_deadline,
    refresh_alert_gauges,
)
from services.router.escalation.worker import EscalationWorker

__all__ = [
    "EscalationWorker",
    "FiredTimer",
    "TimerBatchFailed",
    "expire_next_alert",
    "fire_due_timers",
    "next_deadline",
    "refresh_alert_gauges",
]
