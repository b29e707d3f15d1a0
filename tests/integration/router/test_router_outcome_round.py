"""A delivered outcome's round on PostgreSQL: router's read of the alerts rides in the
engine's settling statement.

The round was five round trips (BEGIN, the settle, router's lean read of the alerts,
the guarded change with its timeline entries and events, COMMIT); the read now goes in
the settling statement (`SettleRead`), its rows taken by router's outcome hook. Counted
on the wire (asyncpg's query log, BEGIN and COMMIT included): deterministic, no timing.
A record whose lease was lost (another process took it) still writes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.common.delivery import Delivered, SqlDeliveryStore
from services.common.delivery.outcomes import Outcome, OutcomeRecorder
from services.common.delivery.records import record_from_row
from services.common.messaging import outbox_messages
from services.common.migrations import upgrade
from services.router import alerting
from services.router.app import RouterRuntime, default_senders
from services.router.config import RouterSettings
from services.router.delivery import RouterDeliveryPlan
from services.router.domain import alert_id_for
from services.router.tables import alert_timeline, alerts, delivery_records
from tests.support.alerts import add_spoc_then_backup, plain_notice
from tests.support.statements import round_trips

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPOC, BACKUP = uuid.uuid4(), uuid.uuid4()
OWNER = "router-test-engine"


class Clock:
    def __call__(self) -> datetime:
        return T0


@pytest.fixture
async def runtime(
    database_url: str | None, make_settings: Callable[..., Any]
) -> AsyncIterator[RouterRuntime]:
    """A router on a migrated database with a directory; its engine never runs."""
    settings: RouterSettings = make_settings(
        RouterSettings, database_url=database_url, link_secret="test-link-secret"
    )
    await upgrade(settings, "router")
    runtime = RouterRuntime(settings=settings, senders=default_senders(settings), clock=Clock())
    await add_spoc_then_backup(runtime.deps, spoc=SPOC, backup=BACKUP, version=1, wait_s=60, at=T0)
    try:
        yield runtime
    finally:
        await runtime.senders.close()
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()


async def _claimed(runtime: RouterRuntime, owners: Sequence[str]) -> tuple[str, list[Any]]:
    """A new alert whose delivery records are in flight, claimed by `owners` in turn."""
    notice = plain_notice(T0)
    async with runtime.deps.unit_of_work() as uow:
        await alerting.open_alert(uow, deps=runtime.deps, notice=notice)
        await uow.commit()
    alert_id = str(alert_id_for(notice.notice_id))
    t = delivery_records
    async with runtime.sessions() as session:
        rows = await session.execute(
            sa.select(t).where(t.c.aggregate_id == alert_id).order_by(t.c.delivery_id)
        )
        records = [record_from_row(row._mapping) for row in rows]
        assert len(records) == len(owners)
        for record, owner in zip(records, owners, strict=True):
            await session.execute(
                sa.update(t)
                .where(t.c.delivery_id == str(record.delivery_id))
                .values(state="sending", claimed_by=owner, claimed_until=T0 + timedelta(hours=1))
            )
        await session.commit()
    return alert_id, records


def _recorder(runtime: RouterRuntime) -> OutcomeRecorder:
    return OutcomeRecorder(
        store=SqlDeliveryStore(sessions=runtime.sessions, table=delivery_records),
        plan=RouterDeliveryPlan(runtime.deps),
        owner=OWNER,
        service="router",
        released=lambda _ids: None,
    )


def _delivered(record: Any) -> Outcome:
    result = Delivered(attempts=1, delivered_at=T0, destination_key="k")
    return Outcome(record=record, result=result, at=T0, attempted=True, destination_key="k")


async def _written(runtime: RouterRuntime, alert_id: str) -> tuple[str, int, int]:
    """(the alert's state, its `delivered` timeline entries, its alert.delivered events)"""
    entries = sa.select(sa.func.count()).where(
        alert_timeline.c.alert_id == alert_id, alert_timeline.c.kind == "delivered"
    )
    events = sa.select(sa.func.count()).where(
        outbox_messages.c.key == alert_id, outbox_messages.c.event_type == "alert.delivered"
    )
    async with runtime.sessions() as session:
        state = await session.execute(sa.select(alerts.c.state).where(alerts.c.id == alert_id))
        return (
            state.scalar_one(),
            (await session.execute(entries)).scalar_one(),
            (await session.execute(events)).scalar_one(),
        )


async def test_a_delivered_outcome_round_is_four_round_trips(runtime: RouterRuntime) -> None:
    alert_id, records = await _claimed(runtime, [OWNER, OWNER])
    recorder = _recorder(runtime)
    recorder.queue([_delivered(r) for r in records])

    with round_trips(runtime.engine) as sent:
        await recorder.flush()
        await asyncio.sleep(0)

    # BEGIN, the settle carrying the alerts' read, the change with its notes, COMMIT
    # (main: a SELECT of the alerts between the two).
    assert sent == ["BEGIN", "WITH", "WITH", "COMMIT"], sent
    assert await _written(runtime, alert_id) == ("delivered", 2, 2)
    states = await _states(runtime, alert_id)
    assert states == ["delivered", "delivered"]


async def test_a_record_whose_lease_was_lost_writes_no_note_and_no_event(
    runtime: RouterRuntime,
) -> None:
    alert_id, records = await _claimed(runtime, [OWNER, "another-engine"])
    recorder = _recorder(runtime)
    recorder.queue([_delivered(r) for r in records])

    await recorder.flush()

    # Ours is settled and noted once; the other engine's record is left as it holds it.
    assert await _written(runtime, alert_id) == ("delivered", 1, 1)
    assert await _states(runtime, alert_id) == ["delivered", "sending"]


async def test_an_outcome_round_whose_every_lease_was_lost_writes_nothing(
    runtime: RouterRuntime,
) -> None:
    alert_id, records = await _claimed(runtime, ["another-engine", "another-engine"])
    recorder = _recorder(runtime)
    recorder.queue([_delivered(r) for r in records])

    await recorder.flush()

    assert await _written(runtime, alert_id) == ("triggered", 0, 0)
    assert await _states(runtime, alert_id) == ["sending", "sending"]


async def _states(runtime: RouterRuntime, alert_id: str) -> list[str]:
    t = delivery_records
    async with runtime.sessions() as session:
        found = await session.execute(
            sa.select(t.c.state).where(t.c.aggregate_id == alert_id).order_by(t.c.delivery_id)
        )
        return list(found.scalars())
