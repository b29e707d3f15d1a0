"""The report's pipeline floor: each rate's CPU per notice, the system's beside the floor's,
with system / floor per process and in total; nothing printed without a floor. The kernel's
part of the CPU: under each rate, and the system's beside the floor's."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.hot_path import __main__ as bench
from benchmarks.hot_path import report


def _phase(rate: float, cpu: dict[str, float], total: float, p50: float) -> dict[str, Any]:
    return {
        "rate": rate,
        "sent": 100,
        "delivered": 100,
        "late": 0,
        "e2e_ms": {"p50": p50},
        "cpu_ms_per_notice": cpu,
        "cpu_ms_per_notice_total": total,
    }


_LATENCY_HEAD = "  rate/s  sent  deliv  late   p50 ms  system p50  system/floor"
SYSTEM = _phase(
    10.0,
    {"intake": 4.0, "router": 8.0, "rumor_control": 0.6, "postgres": 3.0, "kafka": 6.0},
    21.6,
    30.0,
)
FLOOR = _phase(
    10.0,
    {"intake": 2.0, "router": 2.0, "rumor_control": 0.3, "postgres": 1.5, "kafka": 4.0},
    9.8,
    12.0,
)


def _reported(**kernel: Any) -> dict[str, Any]:
    """SYSTEM as a rate phase the report prints, with `kernel` figures if given."""
    phase = {**SYSTEM, "e2e_ms": {"p50": 30.0, "p90": 40.0, "p99": 50.0}, **kernel}
    return {**phase, "e2e_max_ms": 60.0, "sustained": True, "statements_per_notice": {}}


def _results(rates: list[dict[str, Any]], pipeline: dict[str, Any] | None = None) -> dict[str, Any]:
    floors: dict[str, Any] = {
        "kafka_round_trip": {"p50_ms": 2.0, "p99_ms": 4.0},
        "postgres_insert_commit": [],
    }
    if pipeline is not None:
        floors["pipeline"] = pipeline
    return {
        "commit": "abc1234",
        "short": True,
        "infra": {"backend": "postgresql"},
        "floors": floors,
        "rates": rates,
        "throughput": [],
    }


def test_the_ratio_is_the_systems_over_the_floors_and_none_without_both() -> None:
    assert report.ratio(8.0, 2.0) == 4.0
    assert report.ratio(None, 2.0) is None
    assert report.ratio(8.0, None) is None
    assert report.ratio(8.0, 0.0) is None


def test_a_rates_rows_put_the_system_the_floor_and_their_ratio_under_each_process() -> None:
    system, floor, ratios = report.pipeline_rows(SYSTEM, FLOOR)

    assert system.split()[:2] == ["10", "system"]
    assert system.split()[2:] == ["4.0", "8.0", "0.6", "3.0", "6.0", "21.6"]
    assert floor.split() == ["floor", "2.0", "2.0", "0.3", "1.5", "4.0", "9.8"]
    assert ratios.split() == ["system/floor", "2.0x", "4.0x", "2.0x", "2.0x", "1.5x", "2.2x"]


def test_the_report_shows_the_floor_beside_the_system_only_when_it_was_measured() -> None:
    results = _results([_reported()])
    assert "Pipeline floor" not in report.render(results)

    results["floors"]["pipeline"] = {"rates": [FLOOR], "idle_cpu_ms_per_s": {"kafka": 5.0}}
    text = report.render(results)

    assert "Pipeline floor" in text
    assert "system/floor" in text
    latency = text.splitlines()[text.splitlines().index(_LATENCY_HEAD) + 1]
    assert latency.split() == ["10", "100", "100", "0", "12.0", "30.0", "2.5x"]


def test_the_floor_can_be_left_out() -> None:
    assert bench._args([]).skip_pipeline_floor is False
    assert bench._args(["--skip-pipeline-floor"]).skip_pipeline_floor is True


def test_the_floor_alone_is_reported_without_a_system_to_compare() -> None:
    (row,) = report.pipeline_rows(None, FLOOR)
    assert row.split() == ["10", "floor", "2.0", "2.0", "0.3", "1.5", "4.0", "9.8"]

    text = report.render(_results([], {"rates": [FLOOR], "idle_cpu_ms_per_s": {}}))
    assert "system/floor" not in text.split("CPU ms per notice (the floor's")[1]
    assert "  the floor's CPU ms per second with no load" in text
    latency = text.splitlines()[text.splitlines().index(_LATENCY_HEAD) + 1]
    assert latency.split() == ["10", "100", "100", "0", "12.0", "-", "-"]


def test_the_floor_alone_needs_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--pipeline-floor-only", "--backend", "sqlite"]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err


KERNEL = {"intake": 1.0, "router": 1.5, "rumor_control": 0.1, "postgres": 0.9, "kafka": 0.5}


def test_the_kernels_part_is_printed_under_each_rates_cpu() -> None:
    phase = _reported(kernel_ms_per_notice=KERNEL, kernel_ms_per_notice_total=4.0)
    lines = report.render(_results([phase])).splitlines()

    row = lines.index(next(line for line in lines if line.split()[-1:] == ["21.6"]))
    assert lines[row + 1].split() == ["kernel", "1.0", "1.5", "0.1", "0.9", "0.5", "4.0"]


def test_a_run_from_before_the_split_prints_no_kernel_row() -> None:
    lines = report.render(_results([_reported()])).splitlines()
    assert not any(line.startswith("  kernel") for line in lines)


def test_the_pipeline_floor_puts_the_kernels_part_beside_the_floors() -> None:
    phase = _reported(kernel_ms_per_notice=KERNEL, kernel_ms_per_notice_total=4.0)
    floor = {**FLOOR, "kernel_ms_per_notice_total": 1.5}

    text = report.render(_results([phase], {"rates": [floor], "idle_cpu_ms_per_s": {}}))

    assert "  of it in the kernel (stime), system / floor: 10/s 4.0 / 1.5" in text.splitlines()
