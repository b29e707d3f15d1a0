"""How long the escalation worker sleeps: until the nearest deadline, never past it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.router.config import RouterSettings
from services.router.deps import RouterDeps
from services.router.escalation import EscalationWorker
from services.router.escalation import worker as worker_module

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


def test_a_timer_set_here_wakes_the_worker_only_if_it_comes_before_the_sleep_ends(
    worker: EscalationWorker,
) -> None:
    worker._sleep_ends = time.monotonic() + 5.0  # asleep for the idle poll
    worker.timer_set(NOW + timedelta(seconds=60))
    assert not worker._changed.is_set(), "the look at the end of the sleep reads it"
    worker.timer_set(NOW + timedelta(seconds=1))
    assert worker._changed.is_set(), "a nearer deadline: look again"


def test_a_timer_set_during_a_round_always_asks_for_another_look(
    worker: EscalationWorker,
) -> None:
    assert worker._sleep_ends is None  # not asleep: the round may have read before the commit
    worker.timer_set(NOW + timedelta(minutes=10))
    assert worker._changed.is_set()


async def test_from_the_outbox_the_worker_hears_only_other_processes_commits(
    worker: EscalationWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched: list[bool] = []

    def watch(_event: asyncio.Event, *, elsewhere_only: bool = False) -> Callable[[], None]:
        watched.append(elsewhere_only)
        return lambda: None

    monkeypatch.setattr(worker_module, "watch_commits", watch)
    stop = asyncio.Event()
    stop.set()
    await worker.run(stop)
    assert watched == [True], "this process's own new timers come through timer_set"
