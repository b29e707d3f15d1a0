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
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.topics import NOTICES
from services.common.applying import ReadyMessage
from services.common.inbox import claim_message
from services.common.messaging import inbox_messages
from services.rumor_control import notices
from services.rumor_control.tables import bulletins
from services.rumor_control.tables import notices as notice_rows
from tests.integration.router.router_support import notice, update
from tests.integration.rumor_control.rumor_consumer import (
    Record,
    RumorConsumer,
    acknowledged,
    rumor_consumer,
)
from tests.support.kafka_io import wait_for
from tests.support.statements import round_trips


class Rumor(RumorConsumer):
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


@pytest.fixture
async def rumor(database_url: str | None, tmp_path: Path) -> AsyncIterator[Rumor]:
    async with rumor_consumer(database_url, tmp_path) as (engine, deps, consumer):
        yield Rumor(engine, deps, consumer, postgres=database_url is not None)


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
    before, acked, after = notice(), notice(), notice()
    records = [
        Record(before, offset=0),
        Record(acknowledged(acked), offset=0),
        Record(acked, offset=1),
        Record(after, offset=2),
    ]

    sent = await rumor.batch(*records)

    # The acknowledgement came first: its request waits, and the notice's run takes it.
    assert await rumor.written(before.notice_id, records[0].message_id) == PROJECTED
    assert await rumor.written(acked.notice_id, records[2].message_id) == DRAFTED
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
        await notices.acknowledge_alert(ack, deps=rumor.deps, acknowledged=acknowledged(second))
        applying = asyncio.create_task(rumor.batch(*records))
        await wait_for(lambda: _waiting_on_a_lock(rumor.engine), timeout=30, interval=0.02)
        assert not applying.done()
        await ack.commit()
    await asyncio.wait_for(applying, timeout=30)

    # Applied as the batch it was (not failed over to messages applied alone).
    assert rumor.consumer.applier.batches_total == 1
    assert await rumor.written(first.notice_id, records[0].message_id) == PROJECTED
    assert await rumor.written(second.notice_id, records[1].message_id) == DRAFTED
