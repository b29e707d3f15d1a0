"""A crash between commit and publish loses nothing and duplicates nothing in effect.

The notice is committed while no relay runs (the process "died" right after the
commit). A relay started later publishes it; a relay that dies after publishing but
before deleting the row as sent makes it publish twice, and a consumer with an inbox
applies it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.notices import NoticeReceived
from schemas.topics import NOTICES
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.kafka import EventConsumer, make_broker, outbox_publisher
from services.common.outbox import OutboxRelay, OutboxRow
from services.intake.config import IntakeSettings
from tests.integration.intake.intake_support import Intake, run_intake
from tests.support.kafka_io import read_topic, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

EFFECTS = sa.table("crash_test_effects", sa.column("message_id"), sa.column("notice_id"))


class CrashAfterPublish(Exception):
    """The relay process dies after the broker acknowledged, before deleting the row as sent."""


@pytest.fixture
async def stopped_intake(intake_settings: Callable[..., IntakeSettings]) -> AsyncIterator[Intake]:
    """Intake whose own relay is stopped: commits land in the outbox and stay there."""
    async with run_intake(intake_settings()) as intake:
        await intake.app.state.runtime.relay.stop()
        yield intake


async def test_a_committed_notice_is_published_after_a_crash_and_applied_once(
    stopped_intake: Intake, unique: Callable[[str], str]
) -> None:
    intake = stopped_intake
    runtime = intake.app.state.runtime
    notice_id = (await intake.created())["id"]
    key = notice_id.encode()
    bootstrap = intake.settings.kafka_bootstrap_servers

    # Committed, not published.
    pending = await intake.rows("outbox_messages")
    assert [(r["key"], r["sent_at"]) for r in pending] == [(notice_id, None)]
    early = await read_topic(
        bootstrap, NOTICES, until=lambda rs: bool(rs), timeout=2, key_filter=lambda k: k == key
    )
    assert early == []

    # A consumer with an inbox, in the intake database for the test's convenience.
    async with runtime.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE TABLE crash_test_effects (message_id VARCHAR(64), notice_id VARCHAR(64))"
            )
        )
    broker = make_broker(intake.settings, service="crash-test")
    consumer = EventConsumer(
        broker=broker, sessions=runtime.sessions, settings=intake.settings, service="crash-test"
    )

    group = unique("crash-test")

    @consumer.on("notice.received", topic=NOTICES, group_id=group)
    async def apply(envelope: Envelope[NoticeReceived], uow: UnitOfWork) -> None:
        session = uow.session
        if str(envelope.data.notice_id) == notice_id:
            await session.execute(
                sa.insert(EFFECTS).values(message_id=envelope.id, notice_id=notice_id)
            )

    publish = outbox_publisher(runtime.broker)

    async def publish_then_crash(row: OutboxRow) -> None:
        await publish(row)
        raise CrashAfterPublish

    # A relay restarts, publishes, and dies before it can delete the row as sent.
    crashing = OutboxRelay(
        engine=runtime.engine, publish=publish_then_crash, component="intake", retry_delay_s=0.1
    )
    assert await crashing.relay_once() == 0
    kept = await intake.rows("outbox_messages")
    assert [(r["key"], r["sent_at"], r["attempts"]) for r in kept] == [(notice_id, None, 1)]

    # Another relay takes over once the claim lapses and publishes it again.
    await asyncio.sleep(0.2)
    healthy = OutboxRelay(engine=runtime.engine, publish=publish, component="intake")
    assert await healthy.relay_once() == 1
    assert await intake.rows("outbox_messages") == []  # Kafka has it: the row is gone

    records = await read_topic(
        bootstrap, NOTICES, until=lambda rs: len(rs) >= 2, key_filter=lambda k: k == key
    )
    assert len(records) == 2  # at least once: the duplicate is on the topic
    ids = {dict(r.headers)["ce_id"] for r in records}
    assert len(ids) == 1  # ... with the same message id

    await _start_group_at(bootstrap, group, first=min(records, key=lambda r: r.offset))
    await broker.start()
    try:
        # Both deliveries consumed: the group's committed offset is past the duplicate.
        last = max(records, key=lambda r: r.offset)
        await wait_for(
            lambda: _committed(bootstrap, group, last.partition, last.offset + 1), timeout=30
        )
        async with runtime.sessions() as session:
            rows = await session.execute(sa.select(EFFECTS.c.message_id, EFFECTS.c.notice_id))
            effects = [(r.message_id, r.notice_id) for r in rows]
        assert effects == [(ids.pop().decode(), notice_id)]  # once in effect
    finally:
        await broker.stop()


async def _start_group_at(bootstrap: str, group: str, *, first: ConsumerRecord) -> None:
    """Commit the new group's start: our first record, and the end of other partitions.

    The shared topic holds every other test's notices too; reading all of them would make
    this test slower the longer the broker lives, and prove nothing more.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (topic,) = await admin.describe_topics([NOTICES])
        partitions = [TopicPartition(NOTICES, p["partition"]) for p in topic["partitions"]]
    finally:
        await admin.close()
    starter = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await starter.start()
    try:
        starter.assign(partitions)
        ends = await starter.end_offsets(partitions)
        ours = TopicPartition(NOTICES, first.partition)
        await starter.commit({tp: (first.offset if tp == ours else ends[tp]) for tp in partitions})
    finally:
        await starter.stop()


async def _committed(bootstrap: str, group: str, partition: int, offset: int) -> bool:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        committed = await reader.committed(TopicPartition(NOTICES, partition))
        return committed is not None and committed >= offset
    finally:
        await reader.stop()
