"""The hot path's targets, read from a bench run's results: met or not, beside the floor.

Each target names a figure the bench measures and the limit it is held to (issue #11's
goals): CPU per notice, statements per notice, intake alone at 64 clients, and the notice
-> SPOC latency at the rates the goals name. A run is one observation of a shared machine,
so the report prints what this run read, and

    python -m benchmarks.hot_path.targets var/bench/2026*.json

reads several runs: every run's reading, their median and how many runs met each target.
A target a run did not measure (a rate it did not run, intake's phase left out, 200/s for
less than a minute, the other back end) is left out of that run's line, never guessed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "Reading", "Target", "main", "readings", "render_targets"]


@dataclass(frozen=True)
class Reading:
    """One target's figure in one run: where it was read, its value, the same figure of the
    pipeline floor at that rate when the run measured it, and whether the rate was held
    (a rate phase that was not sustained misses a latency target whatever its percentile).
    A CPU reading also carries the price of waking at its rate's gap, when the run measured
    it: intake's request's CPU after that gap asleep, as a multiple of back to back
    (cold_request.py)."""

    where: str
    value: float | None
    floor: float | None = None
    sustained: bool = True
    waking: float | None = None


# What a target reads from a run's results: nothing when the run did not measure it.
Reader = Callable[[dict[str, Any]], Iterator[Reading]]


@dataclass(frozen=True)
class Target:
    """A figure held to a limit: `at_most` (≤) or at least (≥)."""

    name: str
    limit: float
    unit: str
    at_most: bool
    read: Reader

    def met(self, reading: Reading) -> bool | None:
        """Whether the reading is within the limit; None when nothing was read."""
        if not reading.sustained:
            return False
        return self.within(reading.value)

    def within(self, value: float | None) -> bool | None:
        """Whether `value` is within the limit; None for no value."""
        if value is None:
            return None
        return value <= self.limit if self.at_most else value >= self.limit


def _backend(results: dict[str, Any]) -> str:
    return str(results.get("infra", {}).get("backend", "postgresql"))


def _pipeline(results: dict[str, Any], rate: float) -> dict[str, Any]:
    """The pipeline floor's phase at `rate`, or {} when the run did not measure it."""
    floor = results.get("floors", {}).get("pipeline") or {}
    return next((its for its in floor.get("rates", []) if its["rate"] == rate), {})


def _waking(results: dict[str, Any], rate: float) -> float | None:
    """The price of waking at `rate`'s gap between notices, or None when not measured."""
    cold = results.get("floors", {}).get("cold_request") or {}
    gap_ms = 1000.0 / rate
    paced = cold.get("paced", [])
    return next(
        (p["ratio"] for p in paced if math.isclose(p["pause_ms"], gap_ms, abs_tol=1e-3)), None
    )


def _cpu(results: dict[str, Any]) -> Iterator[Reading]:
    for phase in results.get("rates", []):
        rate = phase["rate"]
        floor = _pipeline(results, rate).get("cpu_ms_per_notice_total")
        waking = _waking(results, rate)
        yield Reading(f"{rate:g}/s", phase.get("cpu_ms_per_notice_total"), floor, waking=waking)


def _statements(results: dict[str, Any]) -> Iterator[Reading]:
    if _backend(results) != "postgresql":
        return  # SQLite's statements are not counted
    for phase in results.get("rates", []):
        counted = [v for v in (phase.get("statements_per_notice") or {}).values() if v is not None]
        if counted:
            yield Reading(f"{phase['rate']:g}/s", sum(counted))


def _c64(results: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if _backend(results) != "postgresql":
        return
    yield from (run for run in results.get("throughput", []) if run["concurrency"] == 64)


def _intake_rate(results: dict[str, Any]) -> Iterator[Reading]:
    for run in _c64(results):
        yield Reading("c64", run["notices_per_s"])


def _intake_share(results: dict[str, Any]) -> Iterator[Reading]:
    for run in _c64(results):
        share = run.get("share_of_floor_median_pct", run.get("share_of_first_floor_pct"))
        yield Reading("c64", share)


def _latency(backend: str, rate: float, percentile: str, *, seconds: float = 0.0) -> Reader:
    """A rate phase's notice -> SPOC percentile, on `backend`, run for `seconds` or more."""

    def read(results: dict[str, Any]) -> Iterator[Reading]:
        if _backend(results) != backend:
            return
        for phase in results.get("rates", []):
            if phase["rate"] != rate or phase.get("duration_s", 0.0) < seconds:
                continue
            floor = _pipeline(results, rate).get("e2e_ms", {}).get(percentile)
            yield Reading(
                f"{rate:g}/s",
                phase["e2e_ms"].get(percentile),
                floor,
                sustained=bool(phase.get("sustained", True)),
            )

    return read


TARGETS: tuple[Target, ...] = (
    Target("CPU per notice, all processes", 10.0, " ms", True, _cpu),
    Target("database statements per notice", 30.0, "", True, _statements),
    Target("intake alone at c64", 1000.0, "/s", False, _intake_rate),
    Target("intake alone at c64, of the asyncpg floor", 20.0, "%", False, _intake_share),
    Target("notice -> SPOC p50 at 10/s", 10.0, " ms", True, _latency("postgresql", 10.0, "p50")),
    Target(
        "notice -> SPOC p99 at 200/s for 60 s",
        250.0,
        " ms",
        True,
        _latency("postgresql", 200.0, "p99", seconds=60.0),
    ),
    Target(
        "SQLite: notice -> SPOC p99 at 50/s", 250.0, " ms", True, _latency("sqlite", 50.0, "p99")
    ),
)


def readings(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target's readings in one run, for the JSON: empty `readings` when not measured."""
    return [
        {
            "target": target.name,
            "limit": target.limit,
            "at_most": target.at_most,
            "readings": [
                {
                    "where": r.where,
                    "value": r.value,
                    "pipeline_floor": r.floor,
                    "waking_ratio": r.waking,
                    "sustained": r.sustained,
                    "met": target.met(r),
                }
                for r in target.read(results)
            ],
        }
        for target in TARGETS
    ]


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def _limit(target: Target) -> str:
    return f"{'≤' if target.at_most else '≥'} {target.limit:,g}{target.unit}"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT met", None: "-"}[met]


def render_targets(results: dict[str, Any]) -> list[str]:
    """The report's lines: each target this run measured, its reading(s) and the verdict."""
    lines = [
        "",
        "Targets (floor: the pipeline floor's same figure at that rate; waking: intake's "
        "request's CPU after that rate's gap asleep, as a multiple of back to back; one run "
        "of a shared machine, read several: python -m benchmarks.hot_path.targets FILES)",
    ]
    for target in TARGETS:
        read = list(target.read(results))
        if not read:
            continue
        cells = []
        for r in read:
            beside = [] if r.floor is None else [f"floor {_figure(r.floor)}{target.unit}"]
            beside += [] if r.waking is None else [f"waking x{r.waking:.2f}"]
            floor = f" ({'; '.join(beside)})" if beside else ""
            held = "" if r.sustained else " not sustained,"
            figure = f"{_figure(r.value)}{target.unit}"
            cells.append(f"{r.where} {figure}{floor}{held} {_verdict(target.met(r))}")
        lines.append(f"  {target.name:<42} {_limit(target):>9}   " + "; ".join(cells))
    return lines


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text("utf-8"))
    if not isinstance(data, dict) or "rates" not in data:
        raise ValueError(f"{path}: not a bench run's results (no 'rates')")
    return data


def summarise(runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Every run's reading per target and place, then their median and how many met it."""
    lines: list[str] = []
    for target in TARGETS:
        by_place: dict[str, list[tuple[str, Reading]]] = {}
        for name, results in runs:
            for r in target.read(results):
                by_place.setdefault(r.where, []).append((name, r))
        if not by_place:
            continue
        lines.append(f"{target.name} ({_limit(target)})")
        for where, seen in by_place.items():
            values = [r.value for _, r in seen if r.value is not None]
            floors = [r.floor for _, r in seen if r.floor is not None]
            wakings = [r.waking for _, r in seen if r.waking is not None]
            met = sum(1 for _, r in seen if target.met(r))
            median = statistics.median(values) if values else None
            floor = (
                f", the floor's median {_figure(statistics.median(floors))}{target.unit}"
                if floors
                else ""
            )
            if wakings:
                floor += f", waking's median x{statistics.median(wakings):.2f}"
            lines.append(
                f"  {where:>6}: median {_figure(median)}{target.unit}"
                f" ({_verdict(target.within(median))})"
                f"{floor}; {met} of {len(seen)} runs met it"
            )
            for name, r in seen:
                held = "" if r.sustained else ", not sustained"
                lines.append(f"          {name}: {_figure(r.value)}{target.unit}{held}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Read bench results (JSON files) and print each target across them."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.hot_path.targets", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("results", nargs="+", type=Path, help="var/bench/<timestamp>.json files")
    args = parser.parse_args(argv)
    runs = []
    for path in args.results:
        try:
            runs.append((path.name, _load(path)))
        except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            print(f"targets: {exc}", file=sys.stderr)
            return 2
    print("\n".join(summarise(runs) or ["no run measured any target"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
