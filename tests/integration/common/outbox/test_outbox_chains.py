"""A claim takes a key's consecutive unsent rows at once, and per-key order still holds:
against another relay's lease, and when a key's row fails while its later rows wait."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.topics import NOTICES
from services.common.db import make_session_factory
from services.common.kafka import outbox_publisher
from services.common.messaging import outbox_messages
from services.common.outbox import OutboxRelay, OutboxRow, enqueue
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import published_versions, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

DEADLINE_S = 60.0


async def _enqueue(engine: AsyncEngine, writes: list[tuple[uuid.UUID, int]]) -> None:
    async with make_session_factory(engine)() as session, session.begin():
        for notice_id, version in writes:
            await enqueue(session, notice_updated(notice_id, version), source="aviso.test")


async def _claimed(engine: AsyncEngine, relay_id: str) -> list[tuple[str, int]]:
    t = outbox_messages
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(t.c.key, t.c.payload)
            .where(t.c.claimed_by == relay_id, t.c.sent_at.is_(None))
            .order_by(t.c.id)
        )
        return [(r.key, json.loads(r.payload)["version"]) for r in rows]


async def test_a_claim_takes_whole_chains_but_nothing_of_a_key_held_by_another_relay(
    engine: AsyncEngine,
) -> None:
    held, free = uuid.uuid4(), uuid.uuid4()
    await _enqueue(engine, [(held, 2)])
    holder = OutboxRelay(engine=engine, publish=_unused, component="intake", claim_ttl_s=60)
    async with make_session_factory(engine)() as session, session.begin():
        await session.execute(holder._statements.claim, holder._statements.claim_values())
    await _enqueue(engine, [(held, 3), (free, 2), (held, 4), (free, 3)])

    other = OutboxRelay(engine=engine, publish=_unused, component="intake", claim_ttl_s=60)
    async with make_session_factory(engine)() as session, session.begin():
        result = await session.execute(other._statements.claim, other._statements.claim_values())
        claimed = {(r.key, json.loads(r.payload)["version"]) for r in result}

    assert claimed == {(str(free), 2), (str(free), 3)}, "the free key whole, the held one not"
    assert await _claimed(engine, holder.relay_id) == [(str(held), 2)]


async def _unused(row: OutboxRow) -> None:
    raise AssertionError("this test publishes nothing")


async def test_a_failed_row_holds_its_key_s_later_rows_back_and_all_go_out_in_order(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    failing, other = uuid.uuid4(), uuid.uuid4()
    await _enqueue(engine, [(failing, 2), (other, 2), (failing, 3), (other, 3), (failing, 4)])
    kafka = outbox_publisher(broker)
    tries: list[tuple[str, int]] = []

    async def fails_once(row: OutboxRow) -> None:
        version = json.loads(row.payload)["version"]
        tries.append((row.key, version))
        if (row.key, version) == (str(failing), 2) and tries.count((row.key, version)) == 1:
            raise ConnectionError("the broker went away")
        await kafka(row)

    relay = OutboxRelay(
        engine=engine,
        publish=fails_once,
        component="intake",
        poll_interval_s=0.2,
        retry_delay_s=0.2,
        wake_on_commit=False,
    )
    first = await relay.relay_once()
    assert first == 2, "the other key's two rows; none of the failing key's"
    assert (str(failing), 3) not in tries
    assert (str(failing), 4) not in tries
    await relay.start()
    try:
        await wait_for(lambda: relay.published_total == 5, timeout=DEADLINE_S)
    finally:
        await relay.stop()

    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, failing, 3, timeout=DEADLINE_S
    ) == [2, 3, 4]
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, other, 2, timeout=DEADLINE_S
    ) == [2, 3]
    assert tries.count((str(failing), 3)) == 1, "a held-back row was not sent before its turn"
