"""Prometheus metrics of rumor control, for ops (served on /metrics beside the shared ones)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "BULLETINS_PUBLISHED",
    "DELIVERIES",
    "DELIVERY_FAILURES",
    "GUARDRAIL_BLOCKS",
    "LEAK_HITS",
    "RECEIPTS",
    "REPORT_TO_BULLETIN_SECONDS",
    "RUMOR_REPORTS",
    "VETTING_REFUSALS",
]

RUMOR_REPORTS = Counter(
    "aviso_rumor_reports_total", "Rumor reports received, by channel.", ["channel", "clustered"]
)
REPORT_TO_BULLETIN_SECONDS = Histogram(
    "aviso_rumor_report_to_bulletin_seconds",
    "Time from a rumor's first report to the publication of the bulletin answering it.",
    buckets=(60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400),
)
LEAK_HITS = Counter(
    "aviso_bulletin_leak_hits_total",
    "Spans of draft text blocked for matching restricted detail of a live notice.",
)
GUARDRAIL_BLOCKS = Counter(
    "aviso_bulletin_guardrail_blocks_total",
    "Guardrail findings that blocked a draft, by reason code.",
    ["reason"],
)
VETTING_REFUSALS = Counter(
    "aviso_bulletin_vetting_refusals_total",
    "Sign-offs and approvals refused, by reason code.",
    ["reason"],
)
BULLETINS_PUBLISHED = Counter(
    "aviso_bulletins_published_total",
    "Bulletin versions published, by kind and msgType.",
    ["kind", "msg_type"],
)
DELIVERIES = Counter(
    "aviso_bulletin_deliveries_total",
    "Bulletin deliveries attempted, by channel and outcome (sent, failed, skipped, retry).",
    ["channel", "outcome"],
)
DELIVERY_FAILURES = Counter(
    "aviso_bulletin_delivery_failures_total",
    "Failed bulletin delivery attempts, by channel, reason class and whether it was final "
    "(no attempt follows). Attempts kept off the network by an open circuit breaker are "
    "not counted here (see aviso_delivery_outcomes_total).",
    ["channel", "reason", "final"],
)
RECEIPTS = Counter(
    "aviso_bulletin_receipts_total",
    "Receipt confirmations, first per recipient and version.",
)
