"""Router's Prometheus metrics (served on /metrics beside the common ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ALERTS_BY_STATE",
    "ALERTS_EXHAUSTED",
    "ALERTS_TRIGGERED",
    "DELIVERIES",
    "DELIVERY_FAILURES",
    "ESCALATIONS",
    "OPEN_ALERTS",
    "STEPS_UNREACHABLE",
    "TIMER_LATENESS",
    "TIME_TO_ACKNOWLEDGE",
]

TIME_TO_ACKNOWLEDGE = Histogram(
    "aviso_router_time_to_acknowledge_seconds",
    "From a notice version's alert to its acknowledgement.",
    ["urgency", "drill", "method"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400),
)
OPEN_ALERTS = Gauge(
    "aviso_router_open_alerts",
    "Alerts waiting for an acknowledgement (triggered, delivered, escalated or exhausted).",
)
ALERTS_BY_STATE = Gauge(
    "aviso_router_alerts", "Alerts by state (recounted periodically).", ["state"]
)
ALERTS_TRIGGERED = Counter(
    "aviso_router_alerts_triggered_total", "Alerts opened or re-opened.", ["cause", "drill"]
)
ESCALATIONS = Counter(
    "aviso_router_escalations_total", "Escalation steps fired after a wait ran out.", ["drill"]
)
ALERTS_EXHAUSTED = Counter(
    "aviso_router_alerts_exhausted_total",
    "Alerts whose whole escalation policy ran out unacknowledged: page a human.",
    ["drill"],
)
DELIVERIES = Counter(
    "aviso_router_deliveries_total", "Notifications delivered, by channel.", ["channel"]
)
DELIVERY_FAILURES = Counter(
    "aviso_router_delivery_failures_total",
    "Failed notification attempts, by channel, reason class and whether it was the last.",
    ["channel", "reason", "final"],
)
STEPS_UNREACHABLE = Counter(
    "aviso_router_steps_unreachable_total",
    "Escalation steps whose every channel failed for good, escalated at once.",
    ["drill"],
)
TIMER_LATENESS = Histogram(
    "aviso_router_timer_lateness_seconds",
    "How long after its deadline an escalation timer fired.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 30.0),
)
