"""Prometheus metrics shared by every service (each service adds its own beside these).

A service served by several worker processes (services/common/serve.py) runs
prometheus-client in its multiprocess mode: the supervisor names a fresh directory in
`PROMETHEUS_MULTIPROC_DIR` before it starts the workers, each worker keeps its values in
files there, and `exposition()` sums them all, whichever worker is asked.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "CONSUMER_DEAD_LETTERED",
    "CONSUMER_PROCESSED",
    "CONTENT_TYPE_LATEST",
    "HTTP_REQUESTS",
    "HTTP_REQUEST_SECONDS",
    "MULTIPROCESS_DIR_ENV",
    "OUTBOX_PENDING",
    "OUTBOX_PUBLISHED",
    "exposition",
]

# prometheus-client's own name for it: the library reads it when it is first imported.
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def exposition() -> bytes:
    """The metrics of this process, or of every worker of its group, in text format."""
    directory = os.environ.get(MULTIPROCESS_DIR_ENV)
    if not directory:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


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
    "aviso_outbox_pending",
    "Outbox rows not yet published (sampled on scrape).",
    ["service"],
    # Several workers: the value the last scrape sampled, not one series per worker.
    multiprocess_mode="mostrecent",
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
