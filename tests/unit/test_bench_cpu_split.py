"""The bench's CPU a process spent between two samples, in all and in the kernel alone,
a forking server's live children counted (the report's rows: test_bench_pipeline_report)."""

from __future__ import annotations

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
