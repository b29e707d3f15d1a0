"""Escalation timers fired in batches, on in-memory fakes: limits, poison alerts, waking."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from services.common.outbox import mark_enqueued, writing
from services.router import alerting, escalation
from services.router.app import RouterRuntime, default_senders
from services.router.config import RouterSettings
from services.router.domain import EscalationGuard, Transition, alert_id_for
from services.router.escalation import EscalationWorker
from tests.support.kafka_io import wait_for
from tests.unit.router.fakes import (
    Clock,
    FakeAlerts,
    FakeDeps,
    FakeUnitOfWork,
    directory_document,
    make_deps,
    received,
    with_directory,
)

SPOC_WAIT_S = 10.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(tmp_path: Path, clock: Clock) -> FakeDeps:
    deps = make_deps(tmp_path, clock=clock, router_timer_batch_size=2)
    with_directory(deps.store, directory_document(spoc_wait_s=SPOC_WAIT_S, backup_wait_s=20))
    return deps


async def _open_each_a_second_apart(deps: FakeDeps, clock: Clock, n: int) -> list[uuid.UUID]:
    """`n` alerts, the first the most overdue once their waits run out."""
    ids = []
    for _ in range(n):
        notice = received(now=clock())
        await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=notice)
        ids.append(alert_id_for(notice.notice_id))
        clock.advance(1)
    return ids


def _failing_for(
    alert_id: uuid.UUID, original: Callable[[FakeAlerts, Transition], Awaitable[bool]]
) -> Callable[[FakeAlerts, Transition], Awaitable[bool]]:
    """`FakeAlerts.apply`, except that firing `alert_id`'s timer raises (a poison alert)."""

    async def apply(self: FakeAlerts, transition: Transition) -> bool:
        if transition.after.id == alert_id and isinstance(transition.guard, EscalationGuard):
            raise ValueError("corrupt row")
        return await original(self, transition)

    return apply


async def test_a_batch_fires_at_most_its_limit_most_overdue_first(
    deps: FakeDeps, clock: Clock
) -> None:
    ids = await _open_each_a_second_apart(deps, clock, 3)
    clock.advance(SPOC_WAIT_S)
    uow = FakeUnitOfWork(deps.store)
    fired = await escalation.fire_due_timers(uow, deps=deps, limit=2)
    await uow.commit()
    assert [(f.alert_id, f.fired) for f in fired] == [(ids[0], True), (ids[1], True)]
    assert [deps.store.alerts[a].step for a in ids] == [1, 1, 0]
    assert len(deps.store.events("alert.escalated")) == 2


async def test_the_worker_fires_a_burst_in_batches_one_commit_each(
    deps: FakeDeps, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await _open_each_a_second_apart(deps, clock, 5)
    clock.advance(SPOC_WAIT_S)
    batches: list[int] = []
    original = escalation.worker.fire_due_timers

    async def counting(*args: object, **kwargs: object) -> list[escalation.FiredTimer]:
        fired = await original(*args, **kwargs)  # type: ignore[arg-type]
        batches.append(len(fired))
        return fired

    monkeypatch.setattr(escalation.worker, "fire_due_timers", counting)
    worker = EscalationWorker(deps)
    assert await worker.run_once() is True
    assert batches == [2, 2, 1]  # batch size 2: stops at the first batch that was not full
    assert worker.fired_total == 5
    assert {deps.store.alerts[a].state for a in ids} == {"escalated"}
    assert len(deps.store.entries(ids[4], "escalated")) == 1


async def test_a_failing_alert_does_not_stop_its_batch_and_is_logged_once(
    deps: FakeDeps, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison, *others = await _open_each_a_second_apart(deps, clock, 3)
    clock.advance(SPOC_WAIT_S)
    monkeypatch.setattr(FakeAlerts, "apply", _failing_for(poison, FakeAlerts.apply))
    worker = EscalationWorker(deps)
    with structlog.testing.capture_logs() as logs:
        assert await worker.run_once() is True
        # Set aside for a pause: the next round neither retries nor logs it again.
        assert await worker.run_once() is False
    assert [deps.store.alerts[a].state for a in others] == ["escalated", "escalated"]
    assert deps.store.alerts[poison].step == 0
    assert deps.store.entries(poison, "escalated") == []
    failures = [e for e in logs if e["event"].startswith("escalation.timer")]
    assert [(e["event"], e["alert_id"], e["log_level"]) for e in failures] == [
        ("escalation.timer_failed", str(poison), "error")
    ]
    assert worker._failed_last_round

    # Its pause over, it is tried again: still failing is a warning, not another error.
    worker._poisoned[str(poison)].retry_at = 0.0
    with structlog.testing.capture_logs() as logs:
        await worker.run_once()
    assert [e["event"] for e in logs if e["event"].startswith("escalation.timer")] == [
        "escalation.timer_still_failing"
    ]

    # Repaired: the next try fires it, once, and it leaves the poison list.
    monkeypatch.undo()
    worker._poisoned[str(poison)].retry_at = 0.0
    assert await worker.run_once() is True
    assert deps.store.alerts[poison].state == "escalated"
    assert len(deps.store.entries(poison, "escalated")) == 1
    assert worker._poisoned == {}
    assert worker.fired_total == 3


async def test_wake_cuts_the_sleep_short(deps: FakeDeps) -> None:
    worker = EscalationWorker(deps)
    stop = asyncio.Event()
    sleeping = asyncio.create_task(worker._sleep(stop, 3600, looked=time.monotonic()))
    await asyncio.sleep(0)
    assert not sleeping.done()
    worker.wake()
    await asyncio.wait_for(sleeping, timeout=30)
    # Woken once: the next sleep is a whole one again.
    assert not worker._woken.is_set()


async def test_a_commit_heard_of_ends_the_sleep_a_poll_after_the_last_look(
    deps: FakeDeps,
) -> None:
    worker = EscalationWorker(deps)
    stop = asyncio.Event()
    # The last look was longer than a poll interval ago: a commit heard of means look now.
    looked = time.monotonic() - 2 * deps.settings.router_timer_poll_interval_s
    sleeping = asyncio.create_task(worker._sleep(stop, 3600, looked=looked))
    await asyncio.sleep(0)
    assert not sleeping.done()
    worker._changed.set()
    await asyncio.wait_for(sleeping, timeout=30)


async def test_the_running_worker_hears_of_other_processes_commits_and_its_own_timers(
    deps: FakeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks: list[float] = []

    async def counted(stop: asyncio.Event | None = None) -> bool:
        looks.append(time.monotonic())
        return False

    # Idle: nothing due, so it would sleep for an hour and more; a commit heard of cuts
    # that to one poll interval after the last look.
    monkeypatch.setattr(escalation.worker, "_IDLE_POLL_FACTOR", 10_000)
    worker = EscalationWorker(deps)
    monkeypatch.setattr(worker, "run_once", counted)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await wait_for(lambda: len(looks) == 1, timeout=30, interval=0.01)
        # This process's commits that enqueued events (a notice's opening, its delivery
        # outcomes) no longer wake it by themselves: its own timers come through timer_set.
        assert worker._changed not in writing._watchers
        assert worker._changed in writing._elsewhere_watchers
        async with _sqlite_session() as session:
            mark_enqueued(session)
            await session.commit()
        assert not worker._changed.is_set()
        writing.heard_from_elsewhere()  # another router's NOTIFY
        await wait_for(lambda: len(looks) == 2, timeout=30, interval=0.01)
        await wait_for(lambda: worker._sleep_ends is not None, timeout=30, interval=0.01)
        worker.timer_set(deps.clock() + timedelta(minutes=1))  # before the hour's sleep ends
        await wait_for(lambda: len(looks) == 3, timeout=30, interval=0.01)
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)
    assert worker._changed not in writing._elsewhere_watchers


@contextlib.asynccontextmanager
async def _sqlite_session() -> AsyncIterator[AsyncSession]:
    engine = create_async_engine("sqlite+aiosqlite://")
    try:
        async with AsyncSession(engine) as session:
            yield session
    finally:
        await engine.dispose()


async def test_the_service_wires_wake_escalation_to_its_worker(tmp_path: Path) -> None:
    settings = RouterSettings(var_dir=tmp_path, link_secret="unit-test-link-secret")
    runtime = RouterRuntime(settings=settings, senders=default_senders(settings))
    try:
        runtime.deps.wake_escalation()
        assert runtime.escalation._woken.is_set()
        runtime.deps.timer_set(runtime.deps.clock())  # the worker is not asleep yet
        assert runtime.escalation._changed.is_set()
    finally:
        await runtime.senders.close()
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()
