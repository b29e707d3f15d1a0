"""Delivery metrics. Labels are service, channel, outcome and reason class only: never an
address, a destination key or an id (they would leak and explode the series count)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["BREAKER_OPENED", "DELIVERY_OUTCOMES", "IN_FLIGHT", "PUT_BACK", "SEND_SECONDS"]

DELIVERY_OUTCOMES = Counter(
    "aviso_delivery_outcomes_total",
    "Delivery outcomes: delivered, retrying (an attempt failed), failed (final), skipped; "
    "by service, channel and reason class.",
    ["service", "channel", "outcome", "reason"],
)
SEND_SECONDS = Histogram(
    "aviso_delivery_send_seconds",
    "Duration of one delivery attempt on the network, by service and channel.",
    ["service", "channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge(
    "aviso_delivery_in_flight", "Deliveries claimed and not yet settled, by service.", ["service"]
)
BREAKER_OPENED = Counter(
    "aviso_delivery_breaker_opened_total",
    "Circuit breakers opened on a destination after consecutive failures.",
    ["service", "channel"],
)
PUT_BACK = Counter(
    "aviso_delivery_put_back_total",
    "Sends put back unsent, due again at once, for a later claim: reason destination_busy "
    "(every slot of the destination taken here) or engine_full (a hand-off past "
    "max_in_flight); by service and channel.",
    ["service", "channel", "reason"],
)
