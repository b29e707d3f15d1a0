"""The one place an engine reason class becomes the contract's failure reason.

The engine's classes (`ReasonClass`) are a superset of what `alert.delivery_failed` and
`bulletin.delivery_failed` carry (`schemas.deliveries.DeliveryFailureReason`): a receiver
asking to be left alone for now (HTTP 408/429) is, for the contract, the receiver's
trouble, like a 5xx. Router and rumor_control both report through `contract_reason`.
"""

from __future__ import annotations

from typing import assert_never

from schemas.deliveries import DeliveryFailureReason
from services.common.delivery.errors import REASON_CLASSES, ReasonClass

__all__ = ["contract_reason", "stored_reason"]


def contract_reason(reason: ReasonClass) -> DeliveryFailureReason:
    """`reason` as the contract names it; mypy names a new reason class left out here."""
    match reason:
        case "rate_limited":
            return "http_5xx"
        case (
            "timeout"
            | "unreachable"
            | "http_5xx"
            | "http_4xx"
            | "deferred"
            | "rejected"
            | "invalid_address"
            | "no_address"
            | "circuit_open"
            | "internal"
            | "expired"
        ):
            return reason
        case _:
            assert_never(reason)


def stored_reason(text: str | None) -> DeliveryFailureReason | None:
    """A record's `last_error_class` as the contract names it (None when it never failed)."""
    if text is None:
        return None
    if text in REASON_CLASSES:
        return contract_reason(text)
    return "internal"  # not a class this version knows (a newer writer's): say so, no more
