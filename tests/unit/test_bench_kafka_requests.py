"""The broker's request log read by `make bench --kafka-requests` (benchmarks/kafka_requests.py)."""

from __future__ import annotations

import json

from benchmarks.kafka_requests import parse, render, summarise


def _line(at_ms: int, api: str, client: str, *, total: float, listener: str = "PLAINTEXT") -> str:
    logged = {
        "requestHeader": {"requestApiKeyName": api, "clientId": client},
        "listener": listener,
        "totalTimeMs": total,
        "requestQueueTimeMs": 0.1,
        "localTimeMs": total - 0.3,
        "remoteTimeMs": 0.0,
        "responseQueueTimeMs": 0.1,
        "sendTimeMs": 0.1,
    }
    return f"{at_ms} Completed request:{json.dumps(logged)}"


def test_requests_are_counted_by_client_and_type_within_the_window() -> None:
    lines = [
        _line(900, "PRODUCE", "aviso-intake", total=9.0),  # before the window
        _line(1_000, "PRODUCE", "aviso-intake", total=1.0),
        _line(1_500, "PRODUCE", "aviso-intake", total=3.0),
        _line(1_600, "FETCH", "aviso-router", total=1_000.0),
        _line(1_700, "BROKER_HEARTBEAT", "1", total=0.5, listener="CONTROLLER"),
        "1800 a server line that is not a request",
        "1900 Completed request:{cut short",
        _line(3_100, "PRODUCE", "aviso-intake", total=9.0),  # after it
    ]

    summary = summarise(parse(lines), from_ms=1_000, to_ms=3_000, notices=2)

    rows = {(row["client"], row["api"]): row for row in summary["rows"]}
    assert set(rows) == {
        ("aviso-intake", "PRODUCE"),
        ("aviso-router", "FETCH"),
        ("broker->controller", "BROKER_HEARTBEAT"),
    }
    produce = rows["aviso-intake", "PRODUCE"]
    assert produce["count"] == 2
    assert produce["per_s"] == 1.0  # two in the window's two seconds
    assert produce["per_notice"] == 1.0
    assert produce["p50_ms"]["totalTimeMs"] == 2.0
    assert summary["total"] == 4
    assert summary["total_per_notice"] == 2.0
    assert "aviso-intake" in render(summary)
