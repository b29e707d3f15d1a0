"""Use cases and rules of publishing: who gets a version, and retraction (CAP Cancel).

Approval publishes (vetting.decisions.approve); the deliveries decided here are accepted by
the delivery engine in the same transaction.
"""

from services.rumor_control.publishing.requests import (
    delivery_orders,
    purpose_of,
    request_deliveries,
)
from services.rumor_control.publishing.retraction import retract
from services.rumor_control.publishing.texts import (
    liaison_text,
    radio_delivery_text,
    script_minutes,
)

__all__ = [
    "delivery_orders",
    "liaison_text",
    "purpose_of",
    "radio_delivery_text",
    "request_deliveries",
    "retract",
    "script_minutes",
]
