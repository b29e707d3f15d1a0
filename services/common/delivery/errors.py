"""Why a delivery attempt failed, as a small closed set of reason classes.

A reason class is what timelines, events, metrics and logs carry about a failure: it
says what kind of trouble it was and whether retrying can help, and it never contains
an address, a URL or a server's answer text.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["PERMANENT_REASONS", "REASON_CLASSES", "DeliveryError", "ReasonClass"]

ReasonClass = Literal[
    "timeout",  # the receiver did not answer in time
    "unreachable",  # connection refused, reset, DNS, TLS: no conversation happened
    "http_5xx",  # the receiver failed
    "rate_limited",  # HTTP 408/429: the receiver asks us to come back later
    "http_4xx",  # the receiver refused the request itself (permanent)
    "deferred",  # SMTP 4xx: the relay asks us to come back later
    "rejected",  # SMTP 5xx or refused recipient (permanent)
    "invalid_address",  # the address cannot be used at all (permanent)
    "no_address",  # the recipient has no address on this channel (permanent)
    "circuit_open",  # not tried: the destination's circuit breaker is open
    "internal",  # our side failed (resolving or rendering); retried
    "expired",  # the give-up time passed before an attempt could be made
]

REASON_CLASSES: tuple[ReasonClass, ...] = get_args(ReasonClass)

# Failures that another attempt cannot fix: the record fails at once.
PERMANENT_REASONS: frozenset[ReasonClass] = frozenset(
    {"http_4xx", "rejected", "invalid_address", "no_address", "expired"}
)


class DeliveryError(Exception):
    """A delivery attempt failed; `permanent` means retrying cannot help (e.g. HTTP 400).

    The message names the reason only (never the address or the receiver's answer), so
    it is safe to log.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, reason: ReasonClass | None = None
    ) -> None:
        super().__init__(message)
        if reason is None:
            reason = "rejected" if permanent else "unreachable"
        self.reason: ReasonClass = reason
        self.permanent = permanent or reason in PERMANENT_REASONS
