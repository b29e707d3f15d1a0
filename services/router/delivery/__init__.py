"""Router's deliveries through the shared delivery engine (services/common/delivery).

`plan.RouterDeliveryPlan` tells the engine what to send for an alert (`compose`) and
what each outcome means for the alert (`outcomes`: timeline, events, escalation);
`reports` records the SMS gateway's delivery reports.
The composition root (`app.py`) builds the engine with this plan and runs it.
"""

from __future__ import annotations

from services.router.delivery.compose import outbound, position_of
from services.router.delivery.outcomes import (
    record_attempt_failed,
    record_delivered,
    record_failed,
    record_skipped,
)
from services.router.delivery.plan import RouterDeliveryPlan
from services.router.delivery.reports import record_sms_report

__all__ = [
    "RouterDeliveryPlan",
    "outbound",
    "position_of",
    "record_attempt_failed",
    "record_delivered",
    "record_failed",
    "record_skipped",
    "record_sms_report",
]
