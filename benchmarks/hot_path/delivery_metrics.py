"""Router's delivery engine during a phase, from its `/metrics`: the sends put back unsent
(`aviso_delivery_put_back_total`, by channel and reason) and the sends' network time
(`aviso_delivery_send_seconds`, by channel), as the change between two scrapes."""

from __future__ import annotations

import re
from typing import Any

import httpx

__all__ = ["DeliveryScrape", "delivery_change", "scrape_delivery"]

# name{labels} value
_LINE = re.compile(
    r"^(aviso_delivery_(?:put_back_total|send_seconds_(?:bucket|count|sum)))\{([^}]*)\} (\S+)$"
)
_LABEL = re.compile(r'(\w+)="([^"]*)"')

DeliveryScrape = dict[tuple[str, str, str], float]


async def scrape_delivery(base_url: str, *, service: str = "router") -> DeliveryScrape:
    """The engine's put-back and send-time series of `service` now (empty if unreachable)."""
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            text = (await client.get(f"{base_url}/metrics")).text
    except httpx.HTTPError:
        return {}
    found: DeliveryScrape = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(2)))
        if labels.get("service") != service:
            continue
        extra = labels.get("reason") or labels.get("le") or ""
        found[(match.group(1), labels.get("channel", ""), extra)] = float(match.group(3))
    return found


def delivery_change(before: DeliveryScrape, after: DeliveryScrape) -> dict[str, Any]:
    """Put-backs by channel and reason; per channel the sends, their mean and the share
    answered within 50 ms, 250 ms and 1 s (the histogram's buckets)."""
    put_back: dict[str, dict[str, int]] = {}
    sends: dict[str, dict[str, float]] = {}
    for key, value in after.items():
        name, channel, extra = key
        change = value - before.get(key, 0.0)
        if name == "aviso_delivery_put_back_total":
            put_back.setdefault(channel, {})[extra] = int(change)
        elif name == "aviso_delivery_send_seconds_count":
            sends.setdefault(channel, {})["count"] = change
        elif name == "aviso_delivery_send_seconds_sum":
            sends.setdefault(channel, {})["sum_s"] = change
        elif extra in ("0.05", "0.25", "1.0"):
            sends.setdefault(channel, {})[f"within_{extra}_s"] = change
    for figures in sends.values():
        count = figures.get("count", 0.0)
        figures["mean_ms"] = 1000 * figures.get("sum_s", 0.0) / count if count else 0.0
        for bucket in ("0.05", "0.25", "1.0"):
            if count and f"within_{bucket}_s" in figures:
                figures[f"within_{bucket}_s"] = figures[f"within_{bucket}_s"] / count
    return {"put_back": put_back, "sends": sends}
