"""An outbox row stores only the headers its columns do not say, and its record on the topic
carries the very headers the event was made with, whether the row went through a claim
(both back ends) or was handed over at commit (PostgreSQL)."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.topics import NOTICES
from services.common.cloudevents import OutgoingEvent, correlation_scope
from services.common.db import make_session_factory
from services.common.kafka import outbox_publisher
from services.common.messaging import outbox_messages
from services.common.outbox import OutboxRelay, enqueue
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import read_topic, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

DEADLINE_S = 60.0


async def _enqueue(engine: AsyncEngine, notice_id: uuid.UUID) -> OutgoingEvent:
    async with make_session_factory(engine)() as session, session.begin():
        with correlation_scope(f"req-{uuid.uuid4().hex[:8]}"):
            return await enqueue(session, notice_updated(notice_id, 2), source="aviso.test")


async def _stored_headers(engine: AsyncEngine) -> list[object]:
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(outbox_messages.c.headers))).scalars().all()
    return [value if isinstance(value, dict) else json.loads(value) for value in stored]


async def _record(settings: CommonSettings, notice_id: uuid.UUID) -> ConsumerRecord:
    records = await read_topic(
        settings.kafka_bootstrap_servers,
        NOTICES,
        until=lambda rs: len(rs) >= 1,
        key_filter=lambda k: k == str(notice_id).encode(),
        timeout=DEADLINE_S,
    )
    assert len(records) == 1
    return records[0]


def _assert_carries(record: ConsumerRecord, outgoing: OutgoingEvent) -> None:
    """The record's headers are the event's, in its order; the publisher adds its own
    `content-type` slot first and the `correlation_id` (kafka.py), as it always did."""
    on_topic = [(name, value.decode()) for name, value in record.headers]
    added = ("content-type", "correlation_id")
    assert [p for p in on_topic if p[0] not in added] == [
        p for p in outgoing.headers.items() if p[0] not in added
    ]
    assert dict(on_topic)["content-type"] == outgoing.headers["content-type"]
    assert dict(on_topic)["correlation_id"] == outgoing.headers["ce_correlationid"]


async def test_a_claimed_row_stores_short_headers_and_publishes_the_events_own(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    notice_id = uuid.uuid4()
    outgoing = await _enqueue(engine, notice_id)
    [stored] = await _stored_headers(engine)
    correlation_id = outgoing.headers["ce_correlationid"]
    assert stored == {
        "ce_source": "aviso.test",
        "ce_time": outgoing.headers["ce_time"],
        "ce_correlationid": correlation_id,
    }

    relay = OutboxRelay(
        engine=engine, publish=outbox_publisher(broker), component="intake", poll_interval_s=120
    )
    assert await relay.relay_once() == 1

    _assert_carries(await _record(settings, notice_id), outgoing)


# Rows are handed over at commit on PostgreSQL only.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_handed_row_publishes_the_events_own_headers(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    relay = OutboxRelay(
        engine=engine, publish=outbox_publisher(broker), component="intake", poll_interval_s=120
    )
    await relay.start()
    try:
        notice_id = uuid.uuid4()
        outgoing = await _enqueue(engine, notice_id)
        await wait_for(lambda: relay.published_total == 1, timeout=DEADLINE_S)
    finally:
        await relay.stop()
    _assert_carries(await _record(settings, notice_id), outgoing)
