"""A delivered outcome's round on PostgreSQL: one autocommitted statement.

The round was four round trips (BEGIN, the settle carrying router's lean read of the
alerts, the guarded change with its timeline entries and events, COMMIT), then two (the
read, autocommitted, and the settle carrying the rest); now the records say what the
decisions took from the read (their notice, status and step), and the change, the
entries and the events ride in the engine's settling statement (`SettleCarry`) alone,
which commits by itself. A record that does not say its notice (one ordered before
contexts held it) still has its alert read first. Counted on the wire (asyncpg's query
log, BEGIN and COMMIT included): deterministic, no timing. A record whose lease was
lost (another process took it) still writes nothing; a final failure keeps the
transaction; the change is still guarded by the alert's state and notice version.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.common.delivery import Delivered, Failure, Skip, SqlDeliveryStore
from services.common.delivery.outcomes import Outcome, OutcomeRecorder
from services.common.delivery.records import record_from_row
from services.common.messaging import outbox_messages
from services.router import alerting
from services.router.app import RouterRuntime
from services.router.config import RouterSettings
from services.router.delivery import RouterDeliveryPlan
from services.router.domain import alert_id_for
from services.router.tables import alert_timeline, alerts, delivery_records
from tests.support.alerts import add_spoc_then_backup, plain_notice
from tests.support.router_runtime import stopped_router
from tests.support.statements import round_trips

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPOC, BACKUP = uuid.uuid4(), uuid.uuid4()
OWNER = "router-test-engine"


@pytest.fixture
async def runtime(
    database_url: str | None, make_settings: Callable[..., Any]
) -> AsyncIterator[RouterRuntime]:
    """A router on a migrated database with a directory; its engine never runs."""
    settings: RouterSettings = make_settings(
        RouterSettings, database_url=database_url, link_secret="test-link-secret"
    )
    async with stopped_router(settings, at=T0) as runtime:
        await add_spoc_then_backup(
            runtime.deps, spoc=SPOC, backup=BACKUP, version=1, wait_s=60, at=T0
        )
        yield runtime


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


async def _recorded(runtime: RouterRuntime, outcomes: Sequence[Outcome]) -> list[str]:
    """The statements one outcome round sent recording `outcomes` as owner `OWNER`."""
    recorder = _recorder(runtime)
    recorder.queue(outcomes)
    with round_trips(runtime.engine) as sent:
        await recorder.flush()
        await asyncio.sleep(0)  # asyncpg reports a query the loop turn after its answer
    return sent


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


def _failed(record: Any, *, final: bool = False) -> Outcome:
    retry_at = None if final else T0 + timedelta(seconds=30)
    failure = Failure(
        reason="http_5xx", permanent=False, final=final, attempts=1, at=T0,
        retry_at=retry_at, destination_key="k",
    )  # fmt: skip
    return Outcome(record=record, result=failure, at=T0, attempted=True, destination_key="k")


async def _notes(runtime: RouterRuntime, alert_id: str) -> tuple[list[str], list[str]]:
    """(the alert's timeline kinds after `notified`, its events after alert.triggered)"""
    async with runtime.sessions() as session:
        kinds = await session.execute(
            sa.select(alert_timeline.c.kind)
            .where(alert_timeline.c.alert_id == alert_id, alert_timeline.c.kind != "notified")
            .order_by(alert_timeline.c.id)
        )
        events = await session.execute(
            sa.select(outbox_messages.c.event_type)
            .where(outbox_messages.c.key == alert_id)
            .order_by(outbox_messages.c.id)
        )
        entries = [k for k in kinds.scalars() if k not in ("triggered", "escalation_scheduled")]
        return entries, [e for e in events.scalars() if e != "alert.triggered"]


async def test_a_delivered_outcome_round_is_one_autocommitted_statement(
    runtime: RouterRuntime,
) -> None:
    alert_id, records = await _claimed(runtime, [OWNER, OWNER])
    sent = await _recorded(runtime, [_delivered(r) for r in records])

    # The settle carrying the change with its notes; no read of the alerts, no BEGIN, no
    # COMMIT (before: the alerts' lean read, then the settle).
    assert sent == ["WITH"], sent
    assert await _written(runtime, alert_id) == ("delivered", 2, 2)
    states = await _states(runtime, alert_id)
    assert states == ["delivered", "delivered"]


async def test_a_carried_round_of_a_failed_attempt_and_a_skip_notes_each(
    runtime: RouterRuntime,
) -> None:
    alert_id, records = await _claimed(runtime, [OWNER, OWNER])
    first, second = records
    skip = Outcome(record=second, result=Skip("not_wanted"), at=T0)
    sent = await _recorded(runtime, [_failed(first), skip])

    assert sent == ["WITH"], sent
    entries, events = await _notes(runtime, alert_id)
    assert sorted(entries) == ["delivery_failed", "delivery_skipped"]
    assert events == ["alert.delivery_failed"]
    assert await _states(runtime, alert_id) == ["pending", "skipped"]
    # Nothing marked the alert: it is still waiting for a delivery.
    assert (await _written(runtime, alert_id))[0] == "triggered"


async def test_a_lost_lease_on_the_marking_record_changes_no_alert(
    runtime: RouterRuntime,
) -> None:
    alert_id, records = await _claimed(runtime, ["another-engine", OWNER])
    lost, kept = records
    sent = await _recorded(runtime, [_delivered(lost), _failed(kept)])

    assert sent == ["WITH"], sent
    # Only the kept record's note and event; the lost one's delivery marks nothing.
    assert await _notes(runtime, alert_id) == (["delivery_failed"], ["alert.delivery_failed"])
    assert await _written(runtime, alert_id) == ("triggered", 0, 0)
    assert await _states(runtime, alert_id) == ["sending", "pending"]


async def test_a_round_with_a_final_failure_keeps_the_transaction(
    runtime: RouterRuntime,
) -> None:
    alert_id, records = await _claimed(runtime, [OWNER, OWNER])
    first, second = records
    sent = await _recorded(runtime, [_delivered(first), _failed(second, final=True)])

    # The final failure locks its alert and reads the step's records in a transaction.
    assert sent[0] == "BEGIN", sent
    assert sent[-1] == "COMMIT", sent
    assert await _notes(runtime, alert_id) == (
        ["delivered", "delivery_failed"],
        ["alert.delivered", "alert.delivery_failed"],
    )
    assert (await _written(runtime, alert_id))[0] == "delivered"


async def test_a_record_whose_lease_was_lost_writes_no_note_and_no_event(
    runtime: RouterRuntime,
) -> None:
    alert_id, records = await _claimed(runtime, [OWNER, "another-engine"])
    sent = await _recorded(runtime, [_delivered(r) for r in records])

    assert sent == ["WITH"], sent

    # Ours is settled and noted once; the other engine's record is left as it holds it.
    assert await _written(runtime, alert_id) == ("delivered", 1, 1)
    assert await _states(runtime, alert_id) == ["delivered", "sending"]


async def test_an_outcome_round_whose_every_lease_was_lost_writes_nothing(
    runtime: RouterRuntime,
) -> None:
    alert_id, records = await _claimed(runtime, ["another-engine", "another-engine"])
    sent = await _recorded(runtime, [_delivered(r) for r in records])

    assert sent == ["WITH"], sent

    assert await _written(runtime, alert_id) == ("triggered", 0, 0)
    assert await _states(runtime, alert_id) == ["sending", "sending"]


async def _states(runtime: RouterRuntime, alert_id: str) -> list[str]:
    t = delivery_records
    async with runtime.sessions() as session:
        found = await session.execute(
            sa.select(t.c.state).where(t.c.aggregate_id == alert_id).order_by(t.c.delivery_id)
        )
        return list(found.scalars())


def _unnamed(record: Any) -> Any:
    """`record` as one ordered before contexts named their notice."""
    return replace(record, context={k: v for k, v in record.context.items() if k != "notice_id"})


async def _delivered_events(runtime: RouterRuntime, alert_id: str) -> list[dict[str, Any]]:
    async with runtime.sessions() as session:
        payloads = await session.execute(
            sa.select(outbox_messages.c.payload).where(
                outbox_messages.c.key == alert_id,
                outbox_messages.c.event_type == "alert.delivered",
            )
        )
        return sorted((json.loads(p) for p in payloads.scalars()), key=lambda e: e["channel"])


async def test_records_that_do_not_name_their_notice_have_their_alert_read_first(
    runtime: RouterRuntime,
) -> None:
    alert_id, records = await _claimed(runtime, [OWNER, OWNER])
    sent = await _recorded(runtime, [_delivered(_unnamed(r)) for r in records])

    assert sent == ["SELECT", "WITH"], sent
    assert await _written(runtime, alert_id) == ("delivered", 2, 2)


async def test_an_alert_delivered_event_says_the_same_read_or_not(
    runtime: RouterRuntime,
) -> None:
    read_id, read_records = await _claimed(runtime, [OWNER, OWNER])
    await _recorded(runtime, [_delivered(_unnamed(r)) for r in read_records])
    known_id, known_records = await _claimed(runtime, [OWNER, OWNER])
    await _recorded(runtime, [_delivered(r) for r in known_records])

    async with runtime.sessions() as session:
        rows = await session.execute(sa.select(alerts.c.id, alerts.c.notice_id))
        notices = {row.id: row.notice_id for row in rows}
    read = await _delivered_events(runtime, read_id)
    known = await _delivered_events(runtime, known_id)
    assert len(read) == len(known) == 2
    for alert_id, events in ((read_id, read), (known_id, known)):
        assert {e["alert_id"] for e in events} == {alert_id}
        assert {e["notice_id"] for e in events} == {notices[alert_id]}
    ids = ("alert_id", "notice_id")
    assert [{k: v for k, v in e.items() if k not in ids} for e in read] == [
        {k: v for k, v in e.items() if k not in ids} for e in known
    ]


@pytest.mark.parametrize(
    ("state", "version"), [("acknowledged", 1), ("delivered", 1), ("triggered", 2)]
)
async def test_a_delivered_outcome_leaves_an_alert_no_longer_triggered_at_its_version(
    runtime: RouterRuntime, state: str, version: int
) -> None:
    alert_id, records = await _claimed(runtime, [OWNER, OWNER])
    # Acknowledged meanwhile, marked by another round, or re-opened by a notice update.
    async with runtime.sessions() as session:
        await session.execute(
            sa.update(alerts)
            .where(alerts.c.id == alert_id)
            .values(state=state, notice_version=version)
        )
        await session.commit()
        before = (await session.execute(sa.select(alerts).where(alerts.c.id == alert_id))).one()
    sent = await _recorded(runtime, [_delivered(r) for r in records])

    # Not read: the statement's guard (triggered, at the record's version) leaves the
    # row as it is, and the entries and events are written as after a read.
    assert sent == ["WITH"], sent
    async with runtime.sessions() as session:
        after = (await session.execute(sa.select(alerts).where(alerts.c.id == alert_id))).one()
    assert after == before
    assert await _written(runtime, alert_id) == (state, 2, 2)
