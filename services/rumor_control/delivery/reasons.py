"""The one place an engine reason class becomes the contract's failure reason.

The engine's classes (`ReasonClass`) are a superset of what `bulletin.delivery_failed`
carries (`DeliveryFailureReason`): a receiver asking to be left alone (408/429) is, for
the contract, a server-side refusal to take it now, like a 5xx.
"""

from __future__ import annotations

from typing import assert_never

from schemas.deliveries import DeliveryFailureReason
from services.common.delivery import REASON_CLASSES, ReasonClass

__all__ = ["contract_reason", "stored_reason"]


def contract_reason(reason: ReasonClass) -> DeliveryFailureReason:
    """`reason` as the contract names it; mypy names a new reason class left out here."""
    match reason:
        case "timeout":
            return "timeout"
        case "unreachable":
            return "unreachable"
        case "http_5xx" | "rate_limited":
            return "http_5xx"
        case "http_4xx":
            return "http_4xx"
        case "deferred":
            return "deferred"
        case "rejected":
            return "rejected"
        case "invalid_address":
            return "invalid_address"
        case "no_address":
            return "no_address"
        case "circuit_open":
            return "circuit_open"
        case "internal":
            return "internal"
        case "expired":
            return "expired"
        case _:
            assert_never(reason)


def stored_reason(text: str | None) -> DeliveryFailureReason | None:
    """A record's `last_error_class` as the contract names it (None when it never failed)."""
    if text is None:
        return None
    if text in REASON_CLASSES:
        return contract_reason(text)
    return "internal"  # not a class this version knows (a newer writer's): say so, no more
