"""The bench's options: a profile asked for without py-spy stops before anything starts,
and a warm-up's length and rate reach the plan and the report's head."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.hot_path import __main__ as bench
from benchmarks.hot_path import report
from benchmarks.hot_path.profiling import PhaseProfiler


def test_a_profile_without_py_spy_stops_before_the_stack_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[object] = []
    monkeypatch.setattr(PhaseProfiler, "executable", staticmethod(lambda: None))
    monkeypatch.setattr(bench.Infra, "start", lambda *a, **k: started.append(a))

    assert bench.main(["--profile", "--short"]) == 2

    assert started == []
    assert "pip install -e '.[profile]'" in capsys.readouterr().err


def test_the_warm_up_reaches_the_plan_and_the_reports_head() -> None:
    plan = bench._plan(bench._args(["--short", "--warm-up", "300", "--warm-up-rate", "50"]))
    assert (plan["warm_up_s"], plan["warm_up_rate"]) == (300.0, 50.0)
    results: dict[str, Any] = {
        "commit": "abc1234",
        "short": True,
        "infra": {"backend": "postgresql"},
        "plan": plan,
        "kafka_jvm_opts": "-XX:TieredStopAtLevel=4",
    }
    head = report._head(results)
    assert head[1] == (
        "warmed up 300 s at 50 notices/s; the broker's extra JVM flags: -XX:TieredStopAtLevel=4"
    )


def test_by_default_the_warm_up_is_two_seconds_at_five_a_second() -> None:
    plan = bench._plan(bench._args([]))
    assert (plan["warm_up_s"], plan["warm_up_rate"]) == (2.0, 5.0)


@pytest.mark.parametrize(
    ("argv", "vacuum"),
    [
        ([], False),
        (["--warm-up", "59"], False),
        (["--warm-up", "60"], True),
        (["--warm-up", "300", "--backend", "sqlite"], False),
    ],
)
def test_a_long_warm_up_on_postgresql_is_followed_by_a_vacuum(
    argv: list[str], vacuum: bool
) -> None:
    assert bench._plan(bench._args(argv))["vacuum_after_warm_up"] is vacuum


def test_the_reports_head_says_how_the_vacuum_went() -> None:
    results: dict[str, Any] = {
        "commit": "abc1234",
        "short": False,
        "infra": {"backend": "postgresql"},
        "plan": bench._plan(bench._args(["--warm-up", "300"])),
        "after_warm_up": {"vacuum_s": 4.2, "autovacuum_wait_s": 1.0, "autovacuum_quiet": False},
    }
    assert report._head(results)[2] == (
        "then VACUUM took 4.2 s; autovacuum waited for 1 s (still running when measuring began)"
    )
