"""The bench's PostgreSQL floor sampled more than once: every sample kept in the order
taken, intake's share read against their median, and the first sample's share (the figure
earlier runs printed) kept beside it, in the JSON and in the report."""

from __future__ import annotations

from typing import Any

from benchmarks.hot_path import floor_samples, report


def _floor(concurrency: int, commits: float) -> dict[str, Any]:
    return {"concurrency": concurrency, "commits_per_s": commits, "p50_ms": 2.0, "p99_ms": 9.0}


FIRST = [_floor(16, 5000.0), _floor(64, 5600.0)]
AFTER = [
    [_floor(16, 6000.0), _floor(64, 9200.0)],
    [_floor(16, 5500.0), _floor(64, 8000.0)],
]


def _run(concurrency: int, notices: float) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        "notices_per_s": notices,
        "http_ms": {"p50": 40.0, "p99": 90.0},
        "cpu_ms_per_notice": {"intake": 1.1, "postgres": 0.25},
        "statements_per_notice": 0.5,
    }


def test_every_sample_is_kept_in_order_and_the_median_is_of_them_all() -> None:
    samples = floor_samples.floor_samples(FIRST, AFTER)

    assert samples == {
        "16": {"commits_per_s": [5000.0, 6000.0, 5500.0], "median_commits_per_s": 5500.0},
        "64": {"commits_per_s": [5600.0, 9200.0, 8000.0], "median_commits_per_s": 8000.0},
    }


def test_the_share_is_read_against_the_median_and_the_first_samples_share_is_kept() -> None:
    samples = floor_samples.floor_samples(FIRST, AFTER)

    c16, c64 = floor_samples.with_shares([_run(16, 1100.0), _run(64, 1400.0)], FIRST, samples)

    assert c64["share_of_first_floor_pct"] == 1400.0 / 5600.0 * 100  # 25 %: the old figure
    assert c64["share_of_floor_median_pct"] == 1400.0 / 8000.0 * 100  # 17.5 %
    assert c16["share_of_first_floor_pct"] == 1100.0 / 5000.0 * 100
    assert c16["share_of_floor_median_pct"] == 1100.0 / 5500.0 * 100
    assert c64["notices_per_s"] == 1400.0  # the run's own figures untouched


def test_without_samples_there_is_no_median_share() -> None:
    (run,) = floor_samples.with_shares([_run(64, 1400.0)], FIRST, {})

    assert run["share_of_floor_median_pct"] is None
    assert run["share_of_first_floor_pct"] == 25.0


def test_the_report_prints_every_sample_the_median_and_both_shares() -> None:
    samples = floor_samples.floor_samples(FIRST, AFTER)
    results: dict[str, Any] = {
        "floors": {
            "kafka_round_trip": {"p50_ms": 1.0, "p99_ms": 2.0},
            "postgres_insert_commit": FIRST,
            "postgres_insert_commit_samples": samples,
        },
        "throughput": floor_samples.with_shares([_run(64, 1400.0)], FIRST, samples),
    }

    text = "\n".join(report._floors(results) + report._throughput(results))

    assert "c64 every sample (the start's first, then after intake's phase): 5600, 9200, 8000" in (
        text
    )
    assert "median 8000/s" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("64 "))
    assert row.split()[:4] == ["64", "1400", "25.0%", "17.5%"]
