"""Use cases and rules of publishing: who gets a version, and retraction (CAP Cancel).

Approval publishes (vetting.decisions.approve); the delivery requests decided here go on
the outbox in the same transaction.
"""

from services.rumor_control.publishing.requests import delivery_requests, purpose_of
from services.rumor_control.publishing.retraction import retract
from services.rumor_control.publishing.texts import (
    liaison_text,
    radio_delivery_text,
    script_minutes,
)

__all__ = [
    "delivery_requests",
    "liaison_text",
    "purpose_of",
    "radio_delivery_text",
    "retract",
    "script_minutes",
]
