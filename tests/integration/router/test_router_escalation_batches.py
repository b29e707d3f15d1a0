"""Escalation timers fired in batches on a real database: races, stale guards, bulk writes.

The alerts are opened through the router's own transition and repository; time comes
from a clock the test sets, so a timer is due because the test says so, never because
the wall clock moved.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.common.messaging import outbox_messages
from services.common.migrations import upgrade
from services.router import domain, escalation
from services.router.app import RouterRuntime, default_senders
from services.router.config import RouterSettings
from services.router.deps import RouterDeps
from services.router.domain import DirectoryDocument, Transition
from services.router.escalation import EscalationWorker
from services.router.escalation import worker as worker_module
from services.router.repository import SqlAlertRepository
from services.router.tables import alert_timeline, alerts, delivery_records
from tests.support.alerts import open_alerts, spoc_then_backup

pytestmark = [pytest.mark.postgres]

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WAIT_S = 60.0
SPOC, BACKUP = uuid.uuid4(), uuid.uuid4()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _directory() -> DirectoryDocument:
    return spoc_then_backup(
        spoc=SPOC,
        backup=BACKUP,
        spoc_channels={"webhook_url": "https://hooks.test/spoc", "email": "s@p.example"},
        backup_channels={"email": "b@p.example"},
        wait_s=WAIT_S,
    )


@pytest.fixture
async def instances(
    database_url: str | None, make_settings: Callable[..., Any]
) -> AsyncIterator[tuple[RouterDeps, RouterDeps, Clock]]:
    """Two router instances' deps (engines of their own) on one migrated database, one
    clock. Their delivery engines accept orders; none runs, so nothing is sent."""
    settings: RouterSettings = make_settings(
        RouterSettings,
        database_url=database_url,
        link_secret="test-link-secret",
        router_timer_batch_size=16,
    )
    await upgrade(settings, "router")
    clock = Clock()
    runtimes = [
        RouterRuntime(settings=settings, senders=default_senders(settings), clock=clock)
        for _ in range(2)
    ]
    first, second = (runtime.deps for runtime in runtimes)
    async with first.unit_of_work() as uow:
        await uow.directory.add(
            version=1, document=_directory(), digest="d", source="api", created_by="t", at=T0
        )
        await uow.commit()
    try:
        yield first, second, clock
    finally:
        for runtime in runtimes:
            await runtime.senders.close()
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()


async def _open(deps: RouterDeps, n: int, *, at: datetime) -> list[str]:
    return await open_alerts(deps, n, at=at, batch=n, summary="Integration test notice.")


async def _rows(deps: RouterDeps, query: sa.Select[Any]) -> list[Any]:
    async with deps.sessions() as session:
        return list(await session.execute(query))


async def _timeline_counts(deps: RouterDeps, kind: str) -> dict[str, int]:
    rows = await _rows(
        deps,
        sa.select(alert_timeline.c.alert_id, sa.func.count())
        .where(alert_timeline.c.kind == kind)
        .group_by(alert_timeline.c.alert_id),
    )
    return {alert_id: int(n) for alert_id, n in rows}


async def _event_counts(deps: RouterDeps, event_type: str) -> dict[str, int]:
    rows = await _rows(
        deps,
        sa.select(outbox_messages.c.key, sa.func.count())
        .where(outbox_messages.c.event_type == event_type)
        .group_by(outbox_messages.c.key),
    )
    return {key: int(n) for key, n in rows}


# PostgreSQL only: SQLite has one writer at a time, so there is no race to lose there.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_instances_racing_over_200_due_timers_fire_each_step_once(
    instances: tuple[RouterDeps, RouterDeps, Clock], database_url: str | None
) -> None:
    assert database_url is not None
    first, second, clock = instances
    ids = await _open(first, 200, at=T0)
    workers = [EscalationWorker(first), EscalationWorker(second)]

    for step_kind in ("escalated", "exhausted"):
        clock.now += timedelta(seconds=WAIT_S + 1)
        before = [w.fired_total for w in workers]
        await asyncio.gather(*(w.run_once() for w in workers))
        fired = [w.fired_total - b for w, b in zip(workers, before, strict=True)]
        print(f"{step_kind}: instance split {fired}")
        assert sum(fired) == 200, fired
        counts = await _timeline_counts(first, step_kind)
        assert counts == dict.fromkeys(ids, 1), "each step fired exactly once"
        # Nothing is left due: another round of both fires nothing more.
        await asyncio.gather(*(w.run_once() for w in workers))
        assert sum(w.fired_total for w in workers) == sum(before) + 200

    assert await _event_counts(first, "alert.escalated") == dict.fromkeys(ids, 1)
    states = await _rows(first, sa.select(alerts.c.state, alerts.c.escalation_count))
    assert {tuple(r) for r in states} == {("unacknowledged_exhausted", 1)}
    backup_requests = await _rows(
        first,
        sa.select(alert_timeline.c.alert_id, alert_timeline.c.recipient_id).where(
            alert_timeline.c.kind == "notified", alert_timeline.c.recipient_id == str(BACKUP)
        ),
    )
    assert sorted(r.alert_id for r in backup_requests) == sorted(ids), "backup asked once each"
    orders = await _rows(
        first,
        sa.select(delivery_records.c.aggregate_id).where(
            delivery_records.c.recipient_id == str(BACKUP)
        ),
    )
    assert sorted(r.aggregate_id for r in orders) == sorted(ids), "one delivery record each"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_one_instance_fires_a_burst_in_lanes_at_once_each_timer_once(
    instances: tuple[RouterDeps, RouterDeps, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the worker keeps `router_timer_concurrency` batches open at once
    during a burst (each claims other rows), and still fires every timer exactly once."""
    first, _, clock = instances
    assert first.settings.router_timer_concurrency == 2
    ids = await _open(first, 100, at=T0)
    open_now, most_open, calls = 0, 0, 0
    fire = worker_module.fire_due_timers

    async def counting(*args: Any, **kwargs: Any) -> list[escalation.timers.FiredTimer]:
        nonlocal open_now, most_open, calls
        calls += 1
        open_now += 1
        most_open = max(most_open, open_now)
        try:
            return await fire(*args, **kwargs)
        finally:
            open_now -= 1

    monkeypatch.setattr(worker_module, "fire_due_timers", counting)
    worker = EscalationWorker(first)
    clock.now += timedelta(seconds=WAIT_S + 1)
    await worker.run_once()

    assert most_open == 2, "two batches were open at the same time"
    assert worker.fired_total == 100
    assert await _timeline_counts(first, "escalated") == dict.fromkeys(ids, 1)
    assert await _event_counts(first, "alert.escalated") == dict.fromkeys(ids, 1)

    # Nothing due: a round claims once, not once per lane.
    calls_before = calls
    await worker.run_once()
    assert (calls - calls_before, worker.fired_total) == (1, 100)


async def test_a_stale_escalation_id_in_a_batch_fires_nothing_for_that_alert(
    instances: tuple[RouterDeps, RouterDeps, Clock],
) -> None:
    deps, _, clock = instances
    stale, *fresh = await _open(deps, 3, at=T0)
    clock.now += timedelta(seconds=WAIT_S + 1)
    async with deps.unit_of_work() as uow:
        claimed = await uow.alerts.claim_due_timers(now=clock(), limit=10)
        assert sorted(str(a.id) for a in claimed) == sorted([stale, *fresh])
        transitions = [
            domain.fire_timer(a, escalation_id=a.active_escalation_id, now=clock()) for a in claimed
        ]
        # The stale alert's escalation moved on after the claim (in this transaction:
        # nobody else could, the claim holds its row).
        await uow.session.execute(
            sa.update(alerts).where(alerts.c.id == stale).values(active_escalation_id="moved-on")
        )
        applied = await uow.alerts.apply_all(transitions)
        await uow.commit()
    assert dict(zip((str(a.id) for a in claimed), applied, strict=True)) == {
        stale: False,
        **dict.fromkeys(fresh, True),
    }
    assert await _timeline_counts(deps, "escalated") == dict.fromkeys(fresh, 1)
    assert await _event_counts(deps, "alert.escalated") == dict.fromkeys(fresh, 1)
    [row] = await _rows(deps, sa.select(alerts.c.step).where(alerts.c.id == stale))
    assert row.step == 0


async def _table_counts(deps: RouterDeps) -> dict[str, int]:
    async with deps.sessions() as session:
        connection = await session.connection()
        names = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
        return {
            name: int(
                (await session.execute(sa.text(f'SELECT count(*) FROM "{name}"'))).scalar_one()
            )
            for name in sorted(names)
        }


async def _one_by_one(self: SqlAlertRepository, transitions: Sequence[Transition]) -> list[bool]:
    return [await self.apply(t) for t in transitions]


async def test_apply_all_writes_what_apply_writes(
    instances: tuple[RouterDeps, RouterDeps, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bulk path leaves every table as `apply` one at a time would (if `apply` learns
    to write something new, this fails until `apply_all` writes it too)."""
    deps, _, clock = instances
    by_apply = await _open(deps, 4, at=T0)
    by_apply_all = await _open(deps, 4, at=T0 + timedelta(seconds=1))
    clock.now += timedelta(seconds=WAIT_S + 2)

    async def fire(limit: int) -> list[escalation.FiredTimer]:
        async with deps.unit_of_work() as uow:
            fired = await escalation.fire_due_timers(uow, deps=deps, limit=limit)
            await uow.commit()
        return fired

    start = await _table_counts(deps)
    with monkeypatch.context() as patch:
        patch.setattr(SqlAlertRepository, "apply_all", _one_by_one)
        one_by_one = await fire(4)
    middle = await _table_counts(deps)
    in_bulk = await fire(4)
    end = await _table_counts(deps)

    assert sorted(str(f.alert_id) for f in one_by_one if f.fired) == sorted(by_apply)
    assert sorted(str(f.alert_id) for f in in_bulk if f.fired) == sorted(by_apply_all)
    wrote_one_by_one = {t: middle[t] - start[t] for t in start}
    wrote_in_bulk = {t: end[t] - middle[t] for t in start}
    assert wrote_in_bulk == wrote_one_by_one
    assert wrote_in_bulk["alert_timeline"] == 4 * 2  # escalated + the backup's e-mail request

    def shape(alert_ids: list[str]) -> Any:
        query = (
            sa.select(
                alert_timeline.c.kind,
                alert_timeline.c.step,
                alert_timeline.c.recipient_id,
                alert_timeline.c.channel,
            )
            .where(alert_timeline.c.alert_id.in_(alert_ids))
            .order_by(alert_timeline.c.id)
        )
        return query

    entries_one = [tuple(r) for r in await _rows(deps, shape(by_apply))]
    entries_bulk = [tuple(r) for r in await _rows(deps, shape(by_apply_all))]
    assert entries_bulk == entries_one
