"""The report's Kafka floor: back to back, and paced at 10/s's one every 100 ms when the
run measured it (results written before it have no paced figure and print as before)."""

from __future__ import annotations

from typing import Any

from benchmarks.hot_path import report


def _results(kafka: dict[str, Any]) -> dict[str, Any]:
    return {
        "commit": "abc1234",
        "short": True,
        "infra": {"backend": "postgresql"},
        "floors": {"kafka_round_trip": kafka, "postgres_insert_commit": []},
        "rates": [],
        "throughput": [],
    }


def _floor_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("Floors (same run)")
    return [line for line in lines[start + 1 :] if line.startswith("  ")][:2]


def test_the_paced_kafka_floor_is_printed_under_the_back_to_back_one() -> None:
    kafka = {
        "p50_ms": 0.7,
        "p99_ms": 1.4,
        "paced": {"samples": 30, "pace_s": 0.1, "p50_ms": 1.8, "p99_ms": 2.6},
    }
    back_to_back, paced = _floor_lines(report.render(_results(kafka)))
    assert "p50 0.7 ms" in back_to_back
    assert paced.split() == [
        "...",
        "one",
        "every",
        "100",
        "ms",
        "(10/s's",
        "pace)",
        "p50",
        "1.8",
        "ms",
        "p99",
        "2.6",
        "ms",
    ]


def test_a_run_without_the_paced_floor_prints_the_back_to_back_one_alone() -> None:
    text = report.render(_results({"p50_ms": 0.7, "p99_ms": 1.4}))
    assert "10/s's pace" not in text
    assert "Kafka produce->consume round trip   p50 0.7 ms" in text
