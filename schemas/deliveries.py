"""Delivery vocabulary shared by the services and their events: channels, purposes, reasons.

No delivery request travels on a topic: the service that decides to notify someone (router
for alerts, rumor_control for bulletins) records the delivery in its own database, in the
same transaction as the decision, and its delivery engine sends it. Addresses therefore
never leave their owner. What other services see are the outcomes on the owner's topic:
`alert.delivered` / `alert.delivery_failed` and `bulletin.delivery_failed`, which name the
channel kind and a failure reason class, never an address.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "DeliveryChannel",
    "DeliveryFailureReason",
    "DeliveryPurpose",
]

DeliveryChannel = Literal["webhook", "email", "sms"]
# Why an attempt failed, as a class: what an operator can act on, never an address or the
# receiver's own words (a response body could echo anything).
DeliveryFailureReason = Literal[
    "timeout",  # the receiver did not answer in time
    "unreachable",  # no connection (refused, DNS, TLS)
    "http_5xx",  # the receiver answered a server error, 408 or 429
    "http_4xx",  # the receiver refused the request for good
    "rejected",  # the mail relay refused the message or a recipient
    "circuit_open",  # not attempted: the destination failed repeatedly just before
    "no_address",  # the recipient has no address on this channel
    "expired",  # retried until the purpose's deadline without success
    "deferred",  # the mail relay asked us to come back later (SMTP 4xx)
    "invalid_address",  # the configured address cannot be used at all
    "internal",  # our side failed to prepare the message; retried
]
DeliveryPurpose = Literal[
    "alert", "escalation", "update", "cancel", "bulletin", "correction", "retraction"
]
