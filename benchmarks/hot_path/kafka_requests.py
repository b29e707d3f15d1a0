"""The broker's requests per bench phase (``--kafka-requests``): benchmarks/kafka_requests.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.kafka_requests import parse, render, summarise

__all__ = ["kafka_requests_by_phase", "render_requests"]

render_requests = render


def kafka_requests_by_phase(
    log: Path, windows: dict[str, tuple[int, int]], notices: dict[str, int | None]
) -> dict[str, dict[str, Any]]:
    """Each phase's requests by type and client (per notice where the phase had notices)."""
    if not log.exists():
        return {}
    with log.open(encoding="utf-8", errors="replace") as lines:
        requests = list(parse(lines))
    return {
        phase: summarise(requests, from_ms=start, to_ms=end, notices=notices.get(phase))
        for phase, (start, end) in windows.items()
    }
