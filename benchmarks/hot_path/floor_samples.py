"""The asyncpg INSERT + COMMIT floor sampled more than once in a run, and intake's share
of it read against the samples' median.

One 2-5 s sample at the start of a run varied 5,575-9,188 commits a second between runs
(nineteenth round), more than the system did, so a share of that one sample moved with
the floor, not with intake. The run now also samples the floor after the intake phase
(the services stopped, the database vacuumed and autovacuum waited for, as at the start
no service runs), `AFTER_SAMPLES` times at c16 and c64, and reads intake's share against
the median of all samples. The first sample stays where it was (`postgres_insert_commit`)
and so does the share of it, for comparison with earlier runs.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.hot_path.floors import postgres_insert_commit
from benchmarks.hot_path.infra import Infra

__all__ = ["AFTER_SAMPLES", "CONCURRENCIES", "floor_samples", "sample_after", "with_shares"]

CONCURRENCIES = (16, 64)
# With the one at the start: three samples a concurrency, so the median is one of them.
AFTER_SAMPLES = 2


async def sample_after(infra: Infra, *, duration_s: float) -> list[list[dict[str, Any]]]:
    """`AFTER_SAMPLES` rounds of the floor at each concurrency, alternated (c16, c64, c16,
    c64), so a slow moment of the machine does not fall on one concurrency's samples only."""
    return [
        [
            await postgres_insert_commit(infra, concurrency=c, duration_s=duration_s)
            for c in CONCURRENCIES
        ]
        for _ in range(AFTER_SAMPLES)
    ]


def floor_samples(
    first: list[dict[str, Any]], after: list[list[dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """Per concurrency (as text, JSON's keys): every sample's commits a second in the order
    taken (the first is the start's), and their median."""
    rounds = [first, *after]
    samples: dict[str, dict[str, Any]] = {}
    for c in CONCURRENCIES:
        values = [f["commits_per_s"] for round_ in rounds for f in round_ if f["concurrency"] == c]
        if values:
            samples[str(c)] = {
                "commits_per_s": [round(v, 1) for v in values],
                "median_commits_per_s": statistics.median(values),
            }
    return samples


def with_shares(
    runs: list[dict[str, Any]], first: list[dict[str, Any]], samples: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each intake-alone run with its share (per cent) of the first floor sample at its
    concurrency (the figure earlier runs printed) and of the samples' median."""
    firsts = {f["concurrency"]: f["commits_per_s"] for f in first}
    shared = []
    for run in runs:
        c = run["concurrency"]
        median = samples.get(str(c), {}).get("median_commits_per_s")
        shared.append(
            {
                **run,
                "share_of_first_floor_pct": _pct(run["notices_per_s"], firsts.get(c)),
                "share_of_floor_median_pct": _pct(run["notices_per_s"], median),
            }
        )
    return shared


def _pct(value: float, floor: float | None) -> float | None:
    return value / floor * 100 if floor else None
