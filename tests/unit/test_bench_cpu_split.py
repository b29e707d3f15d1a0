"""The bench's CPU a process spent between two samples, in all and in the kernel alone,
a forking server's live children counted; and the report's kernel row under each rate."""

from __future__ import annotations

from typing import Any

from benchmarks.hot_path import report
from benchmarks.hot_path.infra import _TICKS_PER_S, CpuSample, cpu_ms

TICK_MS = 1000.0 / _TICKS_PER_S

BEFORE = CpuSample(
    ticks={"router": (100, 30), "postgres": (50, 20)},
    children={"postgres": {7: (10, 4), 8: (6, 1)}},
)
AFTER = CpuSample(
    ticks={"router": (160, 45), "postgres": (55, 22)},
    # 7 went on, 8 was reaped (its ticks now in the postmaster's), 9 is new.
    children={"postgres": {7: (18, 7), 9: (5, 3)}},
)


def test_all_ticks_and_the_kernels_are_counted_apart() -> None:
    assert cpu_ms(BEFORE, AFTER) == {"router": 60 * TICK_MS, "postgres": (5 + 8 + 5) * TICK_MS}
    assert cpu_ms(BEFORE, AFTER, kernel=True) == {
        "router": 15 * TICK_MS,
        "postgres": (2 + 3 + 3) * TICK_MS,
    }


def _results(kernel: dict[str, float] | None) -> dict[str, Any]:
    cpu = {"intake": 3.0, "router": 6.0, "rumor_control": 0.5, "postgres": 2.0, "kafka": 2.0}
    phase: dict[str, Any] = {
        "rate": 50.0,
        "sent": 100,
        "delivered": 100,
        "late": 0,
        "e2e_ms": {"p50": 9.0, "p90": 11.0, "p99": 15.0},
        "e2e_max_ms": 16.0,
        "sustained": True,
        "statements_per_notice": {},
        "cpu_ms_per_notice": cpu,
        "cpu_ms_per_notice_total": 13.5,
    }
    if kernel is not None:
        phase["kernel_ms_per_notice"] = kernel
        phase["kernel_ms_per_notice_total"] = sum(kernel.values())
    return {
        "commit": "abc1234",
        "short": True,
        "infra": {"backend": "postgresql"},
        "floors": {
            "kafka_round_trip": {"p50_ms": 2.0, "p99_ms": 4.0},
            "postgres_insert_commit": [],
        },
        "rates": [phase],
        "throughput": [],
    }


def test_the_report_prints_the_kernels_share_under_each_rate() -> None:
    kernel = {"intake": 1.0, "router": 1.5, "rumor_control": 0.1, "postgres": 0.9, "kafka": 0.5}
    lines = report.render(_results(kernel)).splitlines()

    row = lines.index(next(line for line in lines if line.split()[:1] == ["50"] and "13.5" in line))
    assert lines[row + 1].split() == ["kernel", "1.0", "1.5", "0.1", "0.9", "0.5", "4.0"]


def test_a_run_without_the_split_prints_no_kernel_row() -> None:
    assert not any(
        line.startswith("  kernel") for line in report.render(_results(None)).splitlines()
    )


def test_the_pipeline_floor_section_puts_the_kernels_share_beside_the_floors() -> None:
    kernel = {"intake": 1.0, "router": 1.5, "rumor_control": 0.1, "postgres": 0.9, "kafka": 0.5}
    results = _results(kernel)
    floor = {**results["rates"][0], "cpu_ms_per_notice_total": 7.0}
    floor["kernel_ms_per_notice_total"] = 3.5
    results["floors"]["pipeline"] = {"rates": [floor], "idle_cpu_ms_per_s": {}}

    text = report.render(results)

    assert "  of it in the kernel (stime), system / floor: 50/s 4.0 / 3.5" in text.splitlines()
