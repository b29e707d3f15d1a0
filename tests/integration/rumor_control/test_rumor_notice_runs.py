"""A run of notice.received in a consumer's batch: projected in one statement, then
finished one by one, on both back ends.

rumor_control's route prepares a run of new notice.received messages together
(services/common/applying.py `RunPreparer`): on PostgreSQL every version's lock, standby
request and new row in ONE statement (`project_first_version` called for each row of the
arrays), then each message's merge, standby or log line in order. A batch of n new
notices is BEGIN, the inbox claim, that statement and COMMIT: four round trips where it
was 3 + n. The outcomes must be the one-by-one path's: a known notice merged, a waiting
standby request drafted (also one committed while the statement waited for its lock), a
redelivered batch changing nothing, an acknowledgement between notices splitting the run.
Counted on the wire where PostgreSQL runs (asyncpg's query log, BEGIN/COMMIT included).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.alerts import AlertAcknowledged
from schemas.base import EventData
from schemas.topics import ALERTS, NOTICES
from services.common.applying import ReadyMessage
from services.common.db import make_engine, make_session_factory
from services.common.inbox import claim_message
from services.common.kafka import EventConsumer
from services.common.messaging import inbox_messages
from services.common.migrations import upgrade
from services.rumor_control import notices, subscribers
from services.rumor_control.config import RumorControlSettings
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.tables import bulletins, standby_requests
from services.rumor_control.tables import notices as notice_rows
from tests.integration.router.router_support import notice, update
from tests.support.kafka_io import wait_for
from tests.support.records import FetchedRecord
from tests.support.statements import round_trips


class Record(FetchedRecord):
    """A notice's record as intake's relay publishes it, or an acknowledgement's."""

    def __init__(self, data: EventData, offset: int, *, message_id: str | None = None) -> None:
        topic, source = (
            (ALERTS, "aviso.router")
            if isinstance(data, AlertAcknowledged)
            else (NOTICES, "aviso.intake")
        )
        super().__init__(data, offset, topic=topic, source=source, message_id=message_id)


@dataclass
class Rumor:
    engine: AsyncEngine
    deps: RumorControlDeps
    consumer: EventConsumer
    postgres: bool

    async def batch(self, *records: Record) -> list[str]:
        """`records` applied as one fetched batch; what was sent (PostgreSQL; else [])."""
        (subscription,) = self.consumer._subscriptions.values()
        items: list[ReadyMessage] = []
        for record in records:
            item = await self.consumer._prepare(subscription, record)
            assert item is not None
            items.append(item)
        if not self.postgres:
            assert await self.consumer.applier.apply_batch(items) == []
            return []
        with round_trips(self.engine) as sent:
            assert await self.consumer.applier.apply_batch(items) == []
            await asyncio.sleep(0)
        return list(sent)

    async def count(self, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
        async with self.engine.connect() as connection:
            query = sa.select(sa.func.count()).select_from(table).where(where)
            return int((await connection.execute(query)).scalar_one())

    async def written(self, notice_id: uuid.UUID, message_id: str) -> list[int]:
        """[notice rows, inbox rows of the message, standby requests, standby bulletins]."""
        key = str(notice_id)
        return [
            await self.count(notice_rows, notice_rows.c.notice_id == key),
            await self.count(inbox_messages, inbox_messages.c.message_id == message_id),
            await self.count(standby_requests, standby_requests.c.notice_id == key),
            await self.count(bulletins, bulletins.c.standby_for_notice == key),
        ]

    async def acknowledge(self, version: Any) -> None:
        """An acknowledgement that came before its notice: a standby request waits."""
        async with self.deps.unit_of_work() as uow:
            await notices.acknowledge_alert(
                uow, deps=self.deps, acknowledged=_acknowledged(version)
            )
            await uow.commit()


@pytest.fixture
async def rumor(database_url: str | None, tmp_path: Path) -> AsyncIterator[Rumor]:
    """rumor_control's consumer on a migrated database, its handlers registered; no
    broker started (records are handed to it)."""
    settings = RumorControlSettings(
        var_dir=tmp_path / "var",
        database_url=database_url,
        consumer_max_attempts=3,
        consumer_backoff_s=0.001,
    )
    await upgrade(settings, "rumor_control")
    engine = make_engine(settings, "rumor_control")
    sessions = make_session_factory(engine)
    deps = RumorControlDeps.build(
        settings, sessions=sessions, source="aviso.rumor_control", delivery=_NoDelivery()
    )
    consumer = EventConsumer(
        broker=KafkaBroker("127.0.0.1:1"), sessions=sessions, settings=settings,
        service="rumor_control",
    )  # fmt: skip
    subscribers.register(consumer, deps)
    try:
        yield Rumor(engine, deps, consumer, postgres=database_url is not None)
    finally:
        await engine.dispose()


class _NoDelivery:
    async def accept_many(self, session: object, orders: object) -> int:
        return 0


def _acknowledged(version: Any) -> AlertAcknowledged:
    return AlertAcknowledged(
        alert_id=uuid.uuid4(),
        notice_id=version.notice_id,
        notice_version=1,
        status=version.status,
        acknowledged_by=uuid.uuid4(),
        method="api",
        step=0,
        acknowledged_at=datetime.now(UTC),
    )


PROJECTED = [1, 1, 0, 0]  # the notice, its claim; no request left, no standby
DRAFTED = [1, 1, 0, 1]  # ... and the standby drafted


async def test_a_run_of_new_notices_is_one_statement_in_the_batch(rumor: Rumor) -> None:
    versions = [
        notice().model_copy(update={"restricted_fingerprints": (f"{i}" * 32, "f" * 32)})
        for i in range(3)
    ]
    records = [Record(v, offset=i) for i, v in enumerate(versions)]

    sent = await rumor.batch(*records)

    if rumor.postgres:
        # BEGIN, the inbox claim for all three, their projection, COMMIT (main: a
        # projection each, `BEGIN, INSERT, SELECT, SELECT, SELECT, COMMIT`).
        assert sent == ["BEGIN", "INSERT", "SELECT", "COMMIT"], sent
    for version, record in zip(versions, records, strict=True):
        assert await rumor.written(version.notice_id, record.message_id) == PROJECTED
        async with rumor.deps.unit_of_work() as uow:
            row = await uow.notices.get(version.notice_id)
        assert row is not None
        assert (row.version, row.area, row.window_end) == (1, "District 4", version.window_end)
        assert row.fingerprints == frozenset(version.restricted_fingerprints)
        assert row.key_ids == frozenset({"test"})


async def test_a_run_keeps_what_each_message_alone_would_have_done(rumor: Rumor) -> None:
    """In one run: a new notice, one a standby request waits for, a version older than the
    one known, a message recorded before, and a second copy of a message."""
    new = notice()
    awaited = notice()
    await rumor.acknowledge(awaited)
    known = notice().model_copy(update={"restricted_fingerprints": ("a" * 32,)})
    newer = update(known, 2, summary="Moved.").model_copy(
        update={"area": "District 9", "restricted_fingerprints": ("b" * 32,)}
    )
    seen = notice()
    seen_record = Record(seen, offset=0)
    async with rumor.deps.unit_of_work() as uow:
        await claim_message(
            uow.session, consumer="rumor_control.notices", message_id=seen_record.message_id,
            topic=NOTICES,
        )  # fmt: skip
        await uow.commit()
    await rumor.batch(Record(newer, offset=1), Record(notice(), offset=2))  # known at v2
    records = [
        Record(new, offset=3),
        Record(awaited, offset=4),
        late := Record(known, offset=5),
        seen_record,
        Record(new, offset=6, message_id=f"copy-{uuid.uuid4()}"),
    ]
    copy = Record(awaited, offset=7, message_id=records[1].message_id)

    sent = await rumor.batch(*records, copy)

    if rumor.postgres:
        # The run's one projection (the merge and the standby's drafting go through
        # SQLAlchemy's prepared statements, which asyncpg's query log does not show).
        assert sent == ["BEGIN", "INSERT", "SELECT", "COMMIT"], sent
    assert await rumor.written(new.notice_id, records[0].message_id) == PROJECTED
    assert await rumor.written(awaited.notice_id, records[1].message_id) == DRAFTED
    assert await rumor.count(notice_rows, notice_rows.c.notice_id == str(seen.notice_id)) == 0
    async with rumor.deps.unit_of_work() as uow:
        row = await uow.notices.get(known.notice_id)
    assert row is not None
    assert (row.version, row.area) == (2, "District 9"), "the older version changed no field"
    assert row.fingerprints == frozenset({"a" * 32, "b" * 32})
    assert await rumor.count(inbox_messages, inbox_messages.c.message_id == late.message_id) == 1


async def test_a_redelivered_batch_changes_nothing(rumor: Rumor) -> None:
    awaited = notice()
    await rumor.acknowledge(awaited)
    versions = [notice(), awaited]
    records = [Record(v, offset=i) for i, v in enumerate(versions)]
    await rumor.batch(*records)
    processed = rumor.consumer.applier.processed_total
    again = [
        Record(v, offset=2 + i, message_id=r.message_id)
        for i, (v, r) in enumerate(zip(versions, records, strict=True))
    ]

    sent = await rumor.batch(*again)

    assert rumor.consumer.applier.processed_total == processed, "both skipped"
    if rumor.postgres:
        # The claim found both recorded: no handler ran, nothing was written.
        assert sent == ["BEGIN", "INSERT", "COMMIT"], sent
    assert await rumor.written(awaited.notice_id, records[1].message_id) == DRAFTED
    async with rumor.engine.connect() as connection:
        standbys = await connection.scalar(sa.select(sa.func.count()).select_from(bulletins))
    assert standbys == 1


async def test_an_acknowledgement_between_notices_splits_the_run(rumor: Rumor) -> None:
    before, acknowledged, after = notice(), notice(), notice()
    records = [
        Record(before, offset=0),
        Record(_acknowledged(acknowledged), offset=0),
        Record(acknowledged, offset=1),
        Record(after, offset=2),
    ]

    sent = await rumor.batch(*records)

    # The acknowledgement came first: its request waits, and the notice's run takes it.
    assert await rumor.written(before.notice_id, records[0].message_id) == PROJECTED
    assert await rumor.written(acknowledged.notice_id, records[2].message_id) == DRAFTED
    assert await rumor.written(after.notice_id, records[3].message_id) == PROJECTED
    if rumor.postgres:
        # Two runs, a projection each; the acknowledgement's statements between them go
        # through SQLAlchemy's prepared statements (not in asyncpg's query log).
        assert sent == ["BEGIN", "INSERT", "SELECT", "SELECT", "COMMIT"], sent


async def _waiting_on_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        waiting = await connection.scalar(
            sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
        )
    return bool(waiting)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_request_committed_while_the_run_waits_for_a_lock_is_seen(
    rumor: Rumor,
) -> None:
    """The acknowledgement holds the second notice's lock and has written its request, not
    yet committed; the run's statement has projected the first and waits for that lock.
    Once the acknowledgement commits, the function's reads for the second notice must see
    the request (they take their snapshot after the lock, though the outer statement
    started before) and the standby is drafted."""
    first, second = notice(), notice()
    records = [Record(first, offset=0), Record(second, offset=1)]
    async with rumor.deps.unit_of_work() as ack:
        await notices.acknowledge_alert(ack, deps=rumor.deps, acknowledged=_acknowledged(second))
        applying = asyncio.create_task(rumor.batch(*records))
        await wait_for(lambda: _waiting_on_a_lock(rumor.engine), timeout=30, interval=0.02)
        assert not applying.done()
        await ack.commit()
    await asyncio.wait_for(applying, timeout=30)

    # Applied as the batch it was (not failed over to messages applied alone).
    assert rumor.consumer.applier.batches_total == 1
    assert await rumor.written(first.notice_id, records[0].message_id) == PROJECTED
    assert await rumor.written(second.notice_id, records[1].message_id) == DRAFTED
