"""The bench's targets: each read from a run's results only where the run measured it,
met or not against its limit (a rate not held misses a latency target), in the report,
and across several runs with their median and how many met it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.hot_path import report, targets


def _phase(rate: float, **over: Any) -> dict[str, Any]:
    phase: dict[str, Any] = {
        "rate": rate,
        "duration_s": 5.0,
        "sent": 50,
        "delivered": 50,
        "late": 0,
        "sustained": True,
        "e2e_ms": {"p50": 9.0, "p90": 12.0, "p99": 20.0},
        "e2e_max_ms": 25.0,
        "cpu_ms_per_notice": {"intake": 3.0, "router": 6.0},
        "cpu_ms_per_notice_total": 14.0,
        "statements_per_notice": {"intake": 1.1, "router": 1.6, "rumor_control": 0.4},
    }
    return {**phase, **over}


def _c64(per_s: float, share: float) -> dict[str, Any]:
    return {
        "concurrency": 64,
        "notices_per_s": per_s,
        "share_of_first_floor_pct": share - 1.0,
        "share_of_floor_median_pct": share,
        "http_ms": {"p50": 40.0, "p99": 80.0},
        "cpu_ms_per_notice": {"intake": 1.0, "postgres": 0.3},
        "statements_per_notice": 1.0,
    }


def _run(
    rates: list[dict[str, Any]],
    throughput: list[dict[str, Any]] | None = None,
    *,
    backend: str = "postgresql",
    pipeline: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    floors: dict[str, Any] = {
        "kafka_round_trip": {"p50_ms": 2.0, "p99_ms": 4.0},
        "postgres_insert_commit": [{"concurrency": 64, "commits_per_s": 7000.0, "p50_ms": 5.0}],
    }
    if pipeline is not None:
        floors["pipeline"] = {"rates": pipeline}
    return {
        "commit": "abc1234",
        "short": True,
        "infra": {"backend": backend},
        "floors": floors,
        "rates": rates,
        "throughput": throughput or [],
    }


def _by_name(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {t["target"]: t["readings"] for t in targets.readings(results)}


def test_each_rate_is_read_against_its_limit_beside_the_pipeline_floor() -> None:
    floor = {"rate": 50.0, "cpu_ms_per_notice_total": 7.0, "e2e_ms": {"p50": 4.0}}
    run = _run(
        [
            _phase(10.0, cpu_ms_per_notice_total=20.0, e2e_ms={"p50": 9.5, "p99": 30.0}),
            _phase(50.0, cpu_ms_per_notice_total=9.0),
        ],
        [_c64(1400.0, 18.0)],
        pipeline=[floor],
    )
    got = _by_name(run)

    cpu = got["CPU per notice, all processes"]
    assert [(r["where"], r["value"], r["pipeline_floor"], r["met"]) for r in cpu] == [
        ("10/s", 20.0, None, False),
        ("50/s", 9.0, 7.0, True),
    ]
    statements = got["database statements per notice"]
    assert [r["value"] for r in statements] == [pytest.approx(3.1), pytest.approx(3.1)]
    assert got["intake alone at c64"][0]["met"] is True
    share = got["intake alone at c64, of the asyncpg floor"][0]
    assert (share["value"], share["met"]) == (18.0, False)  # the median's share, not the first's
    assert [(r["value"], r["met"]) for r in got["notice -> SPOC p50 at 10/s"]] == [(9.5, True)]


def test_what_a_run_did_not_measure_has_no_reading() -> None:
    # 200/s for 30 s is not the minute the target asks; SQLite's targets on PostgreSQL.
    run = _run([_phase(200.0, duration_s=30.0, e2e_ms={"p50": 50.0, "p99": 100.0})])
    got = _by_name(run)

    assert got["notice -> SPOC p99 at 200/s for 60 s"] == []
    assert got["SQLite: notice -> SPOC p99 at 50/s"] == []
    assert got["intake alone at c64"] == []
    assert got["notice -> SPOC p50 at 10/s"] == []


def test_sqlite_counts_no_statements_and_has_its_own_latency_target() -> None:
    run = _run(
        [_phase(50.0, statements_per_notice={}, e2e_ms={"p50": 12.0, "p99": 38.0})],
        [_c64(900.0, 90.0)],
        backend="sqlite",
    )
    got = _by_name(run)

    assert got["database statements per notice"] == []
    assert got["intake alone at c64"] == []  # the goal is PostgreSQL's
    assert [(r["value"], r["met"]) for r in got["SQLite: notice -> SPOC p99 at 50/s"]] == [
        (38.0, True)
    ]


def test_a_rate_not_sustained_misses_its_latency_target_whatever_its_percentile() -> None:
    held = _phase(200.0, duration_s=60.0, e2e_ms={"p50": 20.0, "p99": 100.0})
    dropped = {**held, "sustained": False}

    assert _by_name(_run([held]))["notice -> SPOC p99 at 200/s for 60 s"][0]["met"] is True
    missed = _by_name(_run([dropped]))["notice -> SPOC p99 at 200/s for 60 s"][0]
    assert (missed["value"], missed["sustained"], missed["met"]) == (100.0, False, False)


def test_the_report_prints_only_what_the_run_measured_with_its_verdict() -> None:
    run = _run(
        [_phase(10.0, cpu_ms_per_notice_total=20.0, e2e_ms={"p50": 9.5, "p90": 9.9, "p99": 30.0})],
        [_c64(1400.0, 21.0)],
    )
    text = report.render(run)
    section = text[text.index("\nTargets") :].splitlines()[2:]

    assert [line.split("  ")[1].strip() for line in section] == [
        "CPU per notice, all processes",
        "database statements per notice",
        "intake alone at c64",
        "intake alone at c64, of the asyncpg floor",
        "notice -> SPOC p50 at 10/s",
    ]
    assert section[0].endswith("10/s 20.0 ms NOT met")
    assert section[3].endswith("c64 21.0% met")


def _write(path: Path, results: dict[str, Any]) -> Path:
    path.write_text(json.dumps(results), "utf-8")
    return path


def test_several_runs_give_each_targets_median_and_how_many_met_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [
        _write(tmp_path / f"run{i}.json", _run([_phase(10.0, cpu_ms_per_notice_total=cpu)]))
        for i, cpu in enumerate((8.0, 12.0, 9.0))
    ]

    assert targets.main([str(f) for f in files]) == 0
    out = capsys.readouterr().out.splitlines()
    head = out.index("CPU per notice, all processes (≤ 10 ms)")
    assert out[head + 1].split() == [
        "10/s:",
        "median",
        "9.0",
        "ms",
        "(met);",
        "2",
        "of",
        "3",
        "runs",
        "met",
        "it",
    ]
    assert [line.split()[-2] for line in out[head + 2 : head + 5]] == ["8.0", "12.0", "9.0"]


def test_a_file_that_is_not_a_runs_results_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}', "utf-8")

    assert targets.main([str(bad)]) == 2
    assert "not a bench run's results" in capsys.readouterr().err


def _with_waking(results: dict[str, Any], paced: list[tuple[float, float]]) -> dict[str, Any]:
    """The run's price of waking (cold_request.py): (pause in ms, ratio) per gap."""
    results["floors"]["cold_request"] = {
        "warm_us": 550.0,
        "paced": [
            {"pause_ms": pause, "samples": 30, "us": 550.0 * ratio, "ratio": ratio}
            for pause, ratio in paced
        ],
    }
    return results


def test_a_cpu_reading_carries_the_price_of_waking_at_its_rate_s_gap() -> None:
    floor = {"rate": 10.0, "cpu_ms_per_notice_total": 9.0, "e2e_ms": {"p50": 4.0}}
    run = _with_waking(
        _run(
            [
                _phase(10.0, cpu_ms_per_notice_total=20.0),
                _phase(50.0, cpu_ms_per_notice_total=12.0),
                _phase(200.0, cpu_ms_per_notice_total=8.0),
            ],
            pipeline=[floor],
        ),
        [(100.0, 2.79), (20.0, 3.38)],  # 200/s's gap was not measured
    )
    cpu = _by_name(run)["CPU per notice, all processes"]
    assert [(r["where"], r["waking_ratio"]) for r in cpu] == [
        ("10/s", 2.79),
        ("50/s", 3.38),
        ("200/s", None),
    ]
    # Only CPU is read beside it.
    assert [r["waking_ratio"] for r in _by_name(run)["notice -> SPOC p50 at 10/s"]] == [None]

    (line,) = [x for x in targets.render_targets(run) if "CPU per notice" in x]
    assert line.endswith(
        "   10/s 20.0 ms (floor 9.0 ms; waking x2.79) NOT met; "
        "50/s 12.0 ms (waking x3.38) NOT met; 200/s 8.0 ms met"
    )


def test_several_runs_give_the_price_of_waking_s_median_beside_the_cpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [
        _write(
            tmp_path / f"run{i}.json",
            _with_waking(_run([_phase(10.0, cpu_ms_per_notice_total=cpu)]), [(100.0, ratio)]),
        )
        for i, (cpu, ratio) in enumerate(((20.0, 2.8), (19.0, 3.5), (21.0, 3.0)))
    ]

    assert targets.main([str(f) for f in files]) == 0
    out = capsys.readouterr().out.splitlines()
    head = out.index("CPU per notice, all processes (≤ 10 ms)")
    assert out[head + 1].endswith("waking's median x3.00; 0 of 3 runs met it")
