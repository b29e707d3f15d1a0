"""The bench's price-of-waking floor (benchmarks/hot_path/cold_request.py): intake's request
timed back to back and after each rate's pause, in a process of its own; the report's
lines for it; a run that could not measure it goes on and says why."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from benchmarks.hot_path import cold_request, report
from benchmarks.hot_path.cold_request import (
    measure_cold_request,
    pauses_ms,
    render_cold_request,
    samples_for,
)


def test_each_rate_pauses_for_its_gap_between_notices() -> None:
    assert pauses_ms([10.0, 50.0, 200.0]) == [100.0, 20.0, 5.0]
    assert pauses_ms([0.0, 3.0]) == [333.333]


def test_a_paced_round_spans_about_three_seconds_within_its_bounds() -> None:
    assert samples_for(100.0) == 30
    assert samples_for(20.0) == 150
    assert samples_for(5.0) == 200  # at most
    assert samples_for(1000.0) == 20  # at least


async def test_the_request_is_timed_back_to_back_and_after_each_pause() -> None:
    measured = await cold_request._measure([1.0, 2.0], warm_up=3, warm=4)
    assert measured["warm_us"] > 0
    assert [p["pause_ms"] for p in measured["paced"]] == [1.0, 2.0]
    assert [p["samples"] for p in measured["paced"]] == [200, 200]
    for paced in measured["paced"]:
        assert paced["us"] > 0
        assert paced["ratio"] == pytest.approx(paced["us"] / measured["warm_us"], abs=0.01)


async def test_a_request_the_app_refuses_ends_the_measurement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks import submission_path

    async def refused(app: Any, body: bytes) -> int:
        return 422

    monkeypatch.setattr(submission_path, "submit", refused)
    with pytest.raises(RuntimeError, match="answered 422"):
        await cold_request._measure([1.0], warm_up=1, warm=1)


async def test_the_bench_runs_it_in_a_process_of_its_own_with_each_rate_s_pause() -> None:
    echo = [sys.executable, "-c", "import json, sys; print(json.dumps({'argv': sys.argv[1:]}))"]
    measured = await measure_cold_request([10.0, 50.0], command=echo)
    assert measured == {"argv": ["--pause-ms", "100", "--pause-ms", "20"]}


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("import sys; sys.exit('intake would not build')", "intake would not build"),
        ("print('not json')", "no JSON on its output"),
        ("import time; time.sleep(30)", "TimeoutExpired"),
    ],
)
async def test_a_measurement_that_failed_is_an_error_the_bench_goes_on_with(
    code: str, error: str
) -> None:
    measured = await measure_cold_request([10.0], command=[sys.executable, "-c", code], timeout_s=3)
    assert set(measured) == {"error"}
    assert error in measured["error"]


def test_the_module_refuses_a_pause_that_is_not_positive(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        cold_request.main(["--pause-ms", "0"])
    assert exited.value.code == 2
    assert "--pause-ms must be positive" in capsys.readouterr().err


def _floors(cold: dict[str, Any] | None) -> dict[str, Any]:
    floors: dict[str, Any] = {
        "kafka_round_trip": {"p50_ms": 0.7, "p99_ms": 1.4},
        "postgres_insert_commit": [],
    }
    if cold is not None:
        floors["cold_request"] = cold
    return floors


_MEASURED = {
    "warm_us": 562.2,
    "paced": [
        {"pause_ms": 100.0, "samples": 30, "us": 1979.2, "ratio": 3.52},
        {"pause_ms": 5.0, "samples": 200, "us": 1254.5, "ratio": 2.23},
    ],
}


def test_the_report_prints_the_request_back_to_back_then_after_each_pause() -> None:
    results = {
        "commit": "abc1234",
        "short": True,
        "infra": {"backend": "postgresql"},
        "floors": _floors(_MEASURED),
        "rates": [],
        "throughput": [],
    }
    # Each line with its runs of spaces (the columns) squeezed to one.
    lines = [" ".join(line.split()) for line in report.render(results).splitlines()]
    at = next(i for i, line in enumerate(lines) if line.startswith("intake's request in"))
    assert lines[at].endswith("back to back 562 us (cold_request.py)")
    assert lines[at + 1] == "... after 100 ms asleep (10/s's gap) 1979 us x3.52"
    assert lines[at + 2] == "... after 5 ms asleep (200/s's gap) 1254 us x2.23"


def test_results_without_it_print_nothing_and_a_failed_one_says_why() -> None:
    assert render_cold_request(_floors(None)) == []
    (line,) = render_cold_request(_floors({"error": "intake would not build"}))
    assert line.endswith("not measured (intake would not build)")
