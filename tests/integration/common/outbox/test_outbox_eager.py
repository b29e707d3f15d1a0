"""An idle relay's handed rows go to the broker from the commit's own callback (eager.py,
produce_now.py): the produce request is written before the committing task yields, and
the row is acknowledged, settled and readable as any other (PostgreSQL, real Kafka)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.conn import AIOKafkaConnection
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.topics import NOTICES
from services.common.db import make_session_factory
from services.common.kafka import outbox_publisher
from services.common.messaging import outbox_messages
from services.common.outbox import OutboxRelay, enqueue
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import published_versions, wait_for

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

DEADLINE_S = 60.0


async def _commit(
    engine: AsyncEngine,
    notice_id: uuid.UUID,
    version: int,
    *,
    after: asyncio.Event | None = None,
    locked: asyncio.Event | None = None,
) -> None:
    """Commit `version`; with `after`/`locked`, in turn with another writer of the key."""
    if after is not None:
        await after.wait()
    async with make_session_factory(engine)() as session, session.begin():
        if after is not None or locked is not None:
            # Writers of one key commit in the order they take this lock, as intake's
            # writers of one notice do its row's; without it, of two concurrent
            # transactions the later version's may commit first.
            await session.execute(sa.text("SELECT pg_advisory_xact_lock(7117)"))
        if locked is not None:
            locked.set()
        await enqueue(session, notice_updated(notice_id, version), source="aviso.test")


async def _unsent(engine: AsyncEngine, notice_id: uuid.UUID) -> int:
    t = outbox_messages
    async with engine.connect() as conn:
        found = await conn.execute(
            sa.select(sa.func.count()).where(t.c.key == str(notice_id), t.c.sent_at.is_(None))
        )
        return int(found.scalar_one())


@asynccontextmanager
async def _idle_relay(
    engine: AsyncEngine, broker: KafkaBroker, notice_id: uuid.UUID
) -> AsyncIterator[OutboxRelay]:
    """intake's relay (no linger), started, its first row (version 2) published so the
    producer has the topic's metadata and its connection, and idle again; stopped after."""
    relay = OutboxRelay(
        engine=engine,
        publish=outbox_publisher(broker),
        component="intake",
        poll_interval_s=120,
        claim_ttl_s=60,
    )
    await relay.start()
    try:
        await _commit(engine, notice_id, 2)
        await wait_for(lambda: relay.published_total == 1, timeout=DEADLINE_S)
        await wait_for(lambda: relay._wake.waiting, timeout=DEADLINE_S)
        yield relay
    finally:
        await relay.stop()


async def test_an_idle_relay_s_produce_request_is_written_before_the_commit_yields(
    settings: CommonSettings,
    engine: AsyncEngine,
    broker: KafkaBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written: list[str] = []
    send = AIOKafkaConnection.send

    def recording(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
        written.append(type(request).__name__)
        return send(self, request, expect_response=expect_response)

    monkeypatch.setattr(AIOKafkaConnection, "send", recording)
    notice_id = uuid.uuid4()
    async with _idle_relay(engine, broker, notice_id) as relay:
        written.clear()

        await _commit(engine, notice_id, 3)
        # Nothing has yielded since the commit's callback: on the sender task's path the
        # request would be written three loop turns after the relay's own turn.
        assert "ProduceRequest" in written

        await wait_for(lambda: relay.published_total == 2, timeout=DEADLINE_S)

    assert written.count("ProduceRequest") == 1  # the round did not send it again
    assert await _unsent(engine, notice_id) == 0  # settled: deleted once acknowledged
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, notice_id, 2, timeout=DEADLINE_S
    ) == [2, 3]


async def test_rows_handed_over_while_a_begun_batch_is_out_follow_it_in_order(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    notice_id = uuid.uuid4()
    async with _idle_relay(engine, broker, notice_id) as relay:
        # Two commits in one go: the first is begun at its commit, the second is handed
        # over while the first is out and goes in the same round, after it.
        in_turn = asyncio.Event()
        await asyncio.gather(
            _commit(engine, notice_id, 3, locked=in_turn),
            _commit(engine, notice_id, 4, after=in_turn),
        )
        await wait_for(lambda: relay.published_total == 3, timeout=DEADLINE_S)

    assert await _unsent(engine, notice_id) == 0
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, notice_id, 3, timeout=DEADLINE_S
    ) == [2, 3, 4]
