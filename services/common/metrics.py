"""Prometheus metrics shared by every service (each service adds its own beside these)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONSUMER_DEAD_LETTERED",
    "CONSUMER_PROCESSED",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_SECONDS",
    "OUTBOX_PENDING",
    "OUTBOX_PUBLISHED",
]

HTTP_REQUESTS = Counter(
    "aviso_http_requests_total",
    "HTTP requests answered, by service, route template, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "aviso_http_request_seconds",
    "HTTP request duration, by service and route template.",
    ["service", "route"],
)
OUTBOX_PUBLISHED = Counter(
    "aviso_outbox_published_total", "Outbox rows published to Kafka.", ["service"]
)
OUTBOX_PENDING = Gauge(
    "aviso_outbox_pending", "Outbox rows not yet published (sampled on scrape).", ["service"]
)
CONSUMER_PROCESSED = Counter(
    "aviso_consumer_processed_total",
    "Events applied by a consumer group (duplicates excluded).",
    ["service", "group"],
)
CONSUMER_DEAD_LETTERED = Counter(
    "aviso_consumer_dead_lettered_total",
    "Messages sent to the DLQ after failing, by consumer group.",
    ["service", "group"],
)
