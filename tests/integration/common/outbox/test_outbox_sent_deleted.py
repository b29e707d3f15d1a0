"""A row Kafka acknowledged is deleted in the settling statement; nothing else is.

On both back ends: a published row is gone while a row whose publish failed stays with
its attempts and error (and is published later); a row whose lease another relay took
over is left to that relay; rows marked sent by a release before this change are never
published again and are left to the retention.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.topics import NOTICES
from services.common.db import make_session_factory
from services.common.kafka import outbox_publisher
from services.common.messaging import outbox_messages
from services.common.outbox import OutboxRelay, OutboxRow, enqueue
from services.common.retention import MessagingRetention
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import published_versions, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

DEADLINE_S = 60.0


async def _enqueue(engine: AsyncEngine, writes: list[tuple[uuid.UUID, int]]) -> None:
    async with make_session_factory(engine)() as session, session.begin():
        for notice_id, version in writes:
            await enqueue(session, notice_updated(notice_id, version), source="aviso.test")


async def _rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    t = outbox_messages
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(
                t.c.key, t.c.payload, t.c.attempts, t.c.last_error, t.c.claimed_by, t.c.sent_at
            ).order_by(t.c.id)
        )
        return [{**row._mapping, "version": json.loads(row.payload)["version"]} for row in rows]


def _relay(engine: AsyncEngine, publish: Any, **options: Any) -> OutboxRelay:
    # No start(): each test drives rounds itself with relay_once.
    return OutboxRelay(
        engine=engine, publish=publish, component="intake", poll_interval_s=120, **options
    )


async def test_a_published_row_is_deleted_and_a_failed_one_kept_with_its_error(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    delivered, refused = uuid.uuid4(), uuid.uuid4()
    await _enqueue(engine, [(delivered, 2), (refused, 2)])
    kafka = outbox_publisher(broker)

    async def broker_refuses_one(row: OutboxRow) -> None:
        if row.key == str(refused):
            raise ConnectionError("broker away")
        await kafka(row)

    relay = _relay(engine, broker_refuses_one, retry_delay_s=0.1)
    assert await relay.relay_once() == 1

    # The acknowledged row is gone; the refused one waits, held back, with what went wrong.
    left = await _rows(engine)
    assert [(r["key"], r["version"], r["sent_at"]) for r in left] == [(str(refused), 2, None)]
    assert (left[0]["attempts"], left[0]["last_error"]) == (1, "ConnectionError")
    assert left[0]["claimed_by"] == relay.relay_id
    bootstrap = settings.kafka_bootstrap_servers
    assert await published_versions(bootstrap, NOTICES, delivered, 1, timeout=DEADLINE_S) == [2]

    # Once its short retry lease ends, a healthy relay publishes it, and then it is gone too.
    healthy = _relay(engine, kafka)
    await wait_for(healthy.relay_once, timeout=DEADLINE_S)
    assert await _rows(engine) == []
    assert await published_versions(bootstrap, NOTICES, refused, 1, timeout=DEADLINE_S) == [2]


async def test_a_row_another_relay_took_over_is_left_to_it(
    engine: AsyncEngine, broker: KafkaBroker
) -> None:
    notice_id = uuid.uuid4()
    await _enqueue(engine, [(notice_id, 2)])
    kafka = outbox_publisher(broker)

    async def stalls_past_its_lease(row: OutboxRow) -> None:
        # While this relay publishes, its lease ends and another relay claims the row.
        async with engine.begin() as conn:
            await conn.execute(
                sa.update(outbox_messages)
                .where(outbox_messages.c.id == row.id)
                .values(claimed_by="relay-other")
            )
        await kafka(row)

    relay = _relay(engine, stalls_past_its_lease)
    assert await relay.relay_once() == 1
    # Not this relay's to delete any more: the other relay publishes it again (a duplicate
    # the consumers' inbox absorbs) and deletes it then.
    left = await _rows(engine)
    assert [(r["key"], r["claimed_by"], r["sent_at"]) for r in left] == [
        (str(notice_id), "relay-other", None)
    ]


async def test_rows_marked_sent_before_the_upgrade_are_left_to_the_retention(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    notice_id = uuid.uuid4()
    marked_at = datetime.now(UTC) - timedelta(days=1)
    # A row the relay of an earlier release published and marked sent (it kept the row).
    await _enqueue(engine, [(notice_id, 2)])
    async with engine.begin() as conn:
        await conn.execute(sa.update(outbox_messages).values(sent_at=marked_at))
    await _enqueue(engine, [(notice_id, 3)])

    relay = _relay(engine, outbox_publisher(broker))
    # Only the new row: the old one is not published again, nor does it hold the key back.
    assert await relay.relay_once() == 1
    bootstrap = settings.kafka_bootstrap_servers
    assert await published_versions(bootstrap, NOTICES, notice_id, 1, timeout=DEADLINE_S) == [3]
    assert [(r["version"], r["sent_at"] is not None) for r in await _rows(engine)] == [(2, True)]
    assert await relay.relay_once() == 0

    # The retention deletes it once it is older than the outbox's retention.
    retention = MessagingRetention(
        make_session_factory(engine),
        outbox_retention_s=3600,
        inbox_retention_s=3600,
        interval_s=3600,
    )
    assert (await retention.prune()).outbox == 1
    assert await _rows(engine) == []
