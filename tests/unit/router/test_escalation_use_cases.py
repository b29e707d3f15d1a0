"""Escalation use cases on in-memory fakes: fire timers, exhaust, expire, look ahead."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from services.router import alerting, escalation
from services.router.domain import AlertRecord, alert_id_for
from services.router.escalation import EscalationWorker
from tests.unit.router.fakes import (
    BACKUP,
    NOW,
    SPOC,
    Clock,
    FakeDeps,
    FakeUnitOfWork,
    directory_document,
    make_deps,
    received,
    with_directory,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(tmp_path: Path, clock: Clock) -> FakeDeps:
    deps = make_deps(tmp_path, clock=clock)
    with_directory(deps.store, directory_document(spoc_wait_s=10, backup_wait_s=20))
    return deps


async def _open(deps: FakeDeps) -> uuid.UUID:
    notice = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=notice)
    return alert_id_for(notice.notice_id)


async def _fire(deps: FakeDeps) -> escalation.FiredTimer | None:
    """Fire a batch of one; the one timer that fired, or None when none was due."""
    uow = FakeUnitOfWork(deps.store)
    results = await escalation.fire_due_timers(uow, deps=deps, limit=1)
    await uow.commit()
    return results[0] if results else None


async def test_nothing_fires_before_the_wait_runs_out(deps: FakeDeps, clock: Clock) -> None:
    await _open(deps)
    clock.advance(9.9)
    assert await _fire(deps) is None


async def test_a_due_timer_escalates_to_the_next_step_then_exhausts(
    deps: FakeDeps, clock: Clock
) -> None:
    alert_id = await _open(deps)
    clock.advance(10.5)
    with structlog.testing.capture_logs() as logs:
        fired = await _fire(deps)
    assert fired is not None
    assert (fired.fired, fired.exhausted, fired.lateness_s) == (True, False, 0.5)
    alert = deps.store.alerts[alert_id]
    assert (alert.state, alert.step, alert.escalation_count) == ("escalated", 1, 1)
    # The backup's wait counts from when the timer really fired.
    assert alert.next_fire_at == NOW + timedelta(seconds=30.5)
    [event] = deps.store.events("alert.escalated")
    assert (event.recipient_id, event.escalation_count) == (BACKUP, 1)
    requests = [r for r in deps.store.orders if r.purpose == "escalation"]
    assert [r.recipient_id for r in requests] == [BACKUP]
    assert [e["event"] for e in logs] == ["alert.escalated"]

    clock.advance(20)
    with structlog.testing.capture_logs() as logs:
        exhausted = await _fire(deps)
    assert exhausted is not None
    assert exhausted.exhausted
    alert = deps.store.alerts[alert_id]
    assert (alert.state, alert.next_fire_at, alert.exhausted_at) == (
        "unacknowledged_exhausted",
        None,
        clock(),
    )
    assert [(e["event"], e["log_level"]) for e in logs] == [("alert.exhausted", "error")]
    assert await _fire(deps) is None


async def test_a_stale_escalation_id_fires_nothing(deps: FakeDeps, clock: Clock) -> None:
    alert_id = await _open(deps)
    clock.advance(11)
    uow = FakeUnitOfWork(deps.store)
    [claimed] = await uow.alerts.claim_due_timers(now=clock(), limit=10)
    # Another instance fired first: the active escalation id moved on after the claim.
    deps.store.alerts[alert_id] = replace(claimed, active_escalation_id=str(uuid.uuid4()))

    async def stale(**_: object) -> list[AlertRecord]:
        return [claimed]

    uow.alerts.claim_due_timers = stale  # type: ignore[method-assign]
    [result] = await escalation.fire_due_timers(uow, deps=deps, limit=10)
    await uow.commit()
    assert (result.alert_id, result.fired) == (alert_id, False)
    assert deps.store.events("alert.escalated") == []
    assert deps.store.entries(alert_id, "escalated") == []
    assert deps.store.alerts[alert_id].step == 0


async def test_expire_resolves_an_alert_whose_window_ended(deps: FakeDeps, clock: Clock) -> None:
    alert_id = await _open(deps)
    uow = FakeUnitOfWork(deps.store)
    assert await escalation.next_deadline(uow) == NOW + timedelta(seconds=10)
    assert await escalation.expire_next_alert(uow, deps=deps) is None
    clock.advance(6 * 3600)
    assert await escalation.expire_next_alert(uow, deps=deps) == alert_id
    alert = deps.store.alerts[alert_id]
    assert (alert.state, alert.resolution) == ("resolved", "notice_expired")
    assert [e.reason for e in deps.store.events("alert.resolved")] == ["notice_expired"]
    assert await escalation.next_deadline(uow) is None


async def test_gauges_count_alerts_by_state(deps: FakeDeps) -> None:
    await _open(deps)
    counts = await escalation.refresh_alert_gauges(FakeUnitOfWork(deps.store))
    assert counts == {"triggered": 1}


async def test_the_worker_fires_every_due_timer_in_one_round(deps: FakeDeps, clock: Clock) -> None:
    first, second = await _open(deps), await _open(deps)
    clock.advance(11)
    worker = EscalationWorker(deps)
    assert await worker.run_once() is True
    assert worker.fired_total == 2
    assert {deps.store.alerts[a].state for a in (first, second)} == {"escalated"}
    assert await worker.run_once() is False
    assert SPOC not in {e.recipient_id for e in deps.store.events("alert.escalated")}
