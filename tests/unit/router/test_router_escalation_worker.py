"""How long the escalation worker sleeps: until the nearest deadline, never past it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.router.config import RouterSettings
from services.router.deps import RouterDeps
from services.router.escalation import EscalationWorker

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def worker(tmp_path: Any) -> EscalationWorker:
    settings = RouterSettings(var_dir=tmp_path, router_timer_poll_interval_s=0.5)
    deps = RouterDeps(settings=settings, sessions=None, clock=lambda: NOW)  # type: ignore[arg-type]
    return EscalationWorker(deps)


def test_sleeps_exactly_until_a_deadline_inside_the_poll_interval(worker: EscalationWorker) -> None:
    assert worker._delay_until(NOW + timedelta(milliseconds=120), progressed=False) == 0.12


def test_idle_it_sleeps_ten_poll_intervals_at_most(worker: EscalationWorker) -> None:
    # New timers come with an event it hears of (watch_commits); this is the safety poll.
    assert worker._delay_until(NOW + timedelta(minutes=5), progressed=False) == 5.0
    assert worker._delay_until(None, progressed=False) == 5.0
    assert worker._delay_until(NOW + timedelta(seconds=3), progressed=False) == 3.0


def test_a_deadline_that_came_due_during_the_round_is_retried_at_once(
    worker: EscalationWorker,
) -> None:
    assert worker._delay_until(NOW - timedelta(milliseconds=1), progressed=False) <= 0.02
    assert worker._delay_until(NOW, progressed=True) <= 0.002


def test_a_timer_that_failed_is_retried_at_poll_pace(worker: EscalationWorker) -> None:
    worker._failed_last_round = True
    assert worker._delay_until(NOW - timedelta(seconds=3), progressed=False) == 0.5
