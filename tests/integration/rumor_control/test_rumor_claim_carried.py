"""A lone notice.received on PostgreSQL: the inbox claim rides in rumor_control's projection.

The consumer hands the claim to rumor_control's carrier (services/common/applying.py
`ClaimCarrier`) on a lone record's first try: the notice's lock, the claim and the
notice's row are one statement (`project_first_version`, rumor_control_0009) sent without
BEGIN, so PostgreSQL commits it as it answers. One round trip where there were five
(BEGIN, the claim, the lock, the projection, COMMIT). Counted on the wire (asyncpg's
query log on every connection the engine hands out, BEGIN and COMMIT included):
deterministic, no timing. A redelivery, a version out of order, a waiting standby request
(also one committed while the statement waited for the lock) keep the usual path's
outcome. A batch's run of notices: test_rumor_notice_runs.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.messaging import inbox_messages
from services.rumor_control import notices
from tests.integration.router.router_support import notice, update
from tests.integration.rumor_control.rumor_consumer import (
    Record,
    acknowledged,
    rumor_consumer,
)
from tests.integration.rumor_control.rumor_consumer import (
    RumorConsumer as Rumor,
)
from tests.support.kafka_io import wait_for
from tests.support.statements import round_trips

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


@pytest.fixture
async def rumor(database_url: str, tmp_path: Path) -> AsyncIterator[Rumor]:
    async with rumor_consumer(database_url, tmp_path) as (engine, deps, consumer):
        yield Rumor(engine, deps, consumer, postgres=True)


PROJECTED = [1, 1, 0, 0]  # the notice, its claim; no request left, no standby


async def test_a_lone_notice_is_projected_and_claimed_in_one_round_trip(
    rumor: Rumor,
) -> None:
    first = notice().model_copy(update={"restricted_fingerprints": ("a" * 32,)})
    record = Record(first, offset=7)
    item = await rumor.ready(record)
    applier = rumor.consumer.applier
    before = applier.processed_total

    with round_trips(rumor.engine) as sent:
        await applier.apply(item)
        await asyncio.sleep(0)

    # One statement, autocommitted: no BEGIN, no separate inbox INSERT or lock, no COMMIT.
    assert sent == ["SELECT"], sent
    assert await rumor.written(first.notice_id, record.message_id) == PROJECTED
    async with rumor.deps.unit_of_work() as uow:
        row = await uow.notices.get(first.notice_id)
    assert row is not None
    assert (row.version, row.area, row.fingerprints) == (1, "District 4", frozenset({"a" * 32}))
    assert applier.processed_total == before + 1


async def test_a_redelivered_notice_writes_nothing_and_is_skipped(rumor: Rumor) -> None:
    first = notice()
    record = Record(first, offset=3)
    again = Record(first, offset=4, message_id=record.message_id)  # the same message
    applier = rumor.consumer.applier
    await applier.apply(await rumor.ready(record))
    applied = applier.processed_total

    with round_trips(rumor.engine) as sent:
        await applier.apply(await rumor.ready(again))
        await asyncio.sleep(0)

    assert applier.processed_total == applied, "skipped as a duplicate"
    assert await rumor.written(first.notice_id, record.message_id) == PROJECTED
    # The carried statement found the claim and wrote nothing; the usual claim then
    # reported the duplicate.
    assert sent == ["SELECT", "BEGIN", "INSERT", "ROLLBACK"], sent


async def test_an_older_version_after_a_newer_one_changes_no_field(rumor: Rumor) -> None:
    first = notice().model_copy(update={"restricted_fingerprints": ("a" * 32,)})
    second = update(first, 2, summary="Moved.").model_copy(
        update={"area": "District 9", "restricted_fingerprints": ("b" * 32,)}
    )
    await rumor.consumer.applier.apply(await rumor.ready(Record(second, offset=1)))
    late = Record(first, offset=2)

    with round_trips(rumor.engine) as sent:
        await rumor.consumer.applier.apply(await rumor.ready(late))
        await asyncio.sleep(0)

    # The carrier found the notice known and wrote nothing; the usual path merged it.
    assert sent[:3] == ["SELECT", "BEGIN", "INSERT"], sent
    assert sent[-1] == "COMMIT", sent
    async with rumor.deps.unit_of_work() as uow:
        row = await uow.notices.get(first.notice_id)
    assert row is not None
    assert (row.version, row.area) == (2, "District 9")
    assert row.fingerprints == frozenset({"a" * 32, "b" * 32})
    assert await rumor.count(inbox_messages, inbox_messages.c.message_id == late.message_id) == 1


async def test_a_waiting_standby_request_takes_the_usual_path_and_is_drafted(
    rumor: Rumor,
) -> None:
    first = notice()
    async with rumor.deps.unit_of_work() as uow:
        await notices.acknowledge_alert(uow, deps=rumor.deps, acknowledged=acknowledged(first))
        await uow.commit()
    record = Record(first, offset=1)

    await rumor.consumer.applier.apply(await rumor.ready(record))

    assert await rumor.written(first.notice_id, record.message_id) == [1, 1, 0, 1]


async def _waiting_on_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        waiting = await connection.scalar(
            sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
        )
    return bool(waiting)


async def test_a_request_committed_while_the_statement_waits_for_the_lock_is_seen(
    rumor: Rumor,
) -> None:
    """The acknowledgement holds the notice's lock and has written its request, not yet
    committed; the carried statement waits for the lock. Once the acknowledgement commits
    the statement must see its request (a statement's own snapshot would have been taken
    before the wait and missed it: no standby, ever) and leave the notice to the usual
    path, which drafts the standby."""
    first = notice()
    record = Record(first, offset=1)
    item = await rumor.ready(record)
    async with rumor.deps.unit_of_work() as ack:
        await notices.acknowledge_alert(ack, deps=rumor.deps, acknowledged=acknowledged(first))
        applying = asyncio.create_task(rumor.consumer.applier.apply(item))
        await wait_for(lambda: _waiting_on_a_lock(rumor.engine), timeout=30, interval=0.02)
        assert not applying.done()
        await ack.commit()
    await asyncio.wait_for(applying, timeout=30)

    assert await rumor.written(first.notice_id, record.message_id) == [1, 1, 0, 1]
