"""Consumers applying what Kafka has fetched in one transaction, against a real Kafka broker
and real databases (SQLite and PostgreSQL): one transaction for a batch, per-key order, a
poison message dead-lettered alone, duplicates skipped, an outage and a stop mid-batch
losing nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schemas.notices import NoticeUpdated
from schemas.topics import DLQ
from services.common.cloudevents import Envelope, OutgoingEvent, new_event
from services.common.db import UnitOfWork, make_engine, make_session_factory
from services.common.inbox import claim_message
from services.common.kafka import EventConsumer, make_broker
from services.common.migrations import upgrade
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import committed_offsets, produce_raw, read_topic, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

# seq: the order the effects were written in, whatever order a SELECT returns them in.
EFFECTS_DDL = (
    "CREATE TABLE test_batch_effects (seq {seq}, message_id VARCHAR(64), "
    "notice_id VARCHAR(64), version INTEGER, tx VARCHAR(64))"
)
SEQ = {"postgresql": "BIGSERIAL PRIMARY KEY", "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT"}


@dataclass
class Harness:
    settings: CommonSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    commits: int = 0
    brokers: list[KafkaBroker] = field(default_factory=list)
    # notice id -> what its handler does before writing its effect (raise, block, ...)
    before_effect: dict[str, Callable[[UnitOfWork], Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def consumer(
        self, topic: str, group: str, **overrides: Any
    ) -> tuple[KafkaBroker, EventConsumer]:
        settings = self.settings.model_copy(update=overrides)
        broker = make_broker(settings, service="test")
        self.brokers.append(broker)
        consumer = EventConsumer(
            broker=broker, sessions=self.sessions, settings=settings, service="test"
        )
        consumer.on("notice.updated", topic=topic, group_id=group)(self.handle)
        return broker, consumer

    async def handle(self, envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        self.calls.append(envelope.id)
        step = self.before_effect.get(str(envelope.data.notice_id))
        if step is not None:
            await step(uow)
        await uow.session.execute(
            sa.text(
                "INSERT INTO test_batch_effects (message_id, notice_id, version, tx) "
                "VALUES (:m, :n, :v, :tx)"
            ),
            {
                "m": envelope.id,
                "n": str(envelope.data.notice_id),
                "v": envelope.data.version,
                "tx": str(id(uow.session)),
            },
        )

    async def effects(self) -> list[tuple[str, str, int, str]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT message_id, notice_id, version, tx FROM test_batch_effects ORDER BY seq"
                )
            )
            return [(r.message_id, r.notice_id, r.version, r.tx) for r in rows]


@pytest.fixture
async def harness(
    database_url: str | None, kafka_bootstrap: str, make_settings: Callable[..., CommonSettings]
) -> AsyncIterator[Harness]:
    settings = make_settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_batch_max=50,
        consumer_max_attempts=3,
    )
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    async with engine.begin() as conn:
        await conn.execute(sa.text(EFFECTS_DDL.format(seq=SEQ[engine.dialect.name])))
    h = Harness(settings, engine, make_session_factory(engine))

    def committed(_conn: Any) -> None:
        h.commits += 1

    event.listen(engine.sync_engine, "commit", committed)
    yield h
    for broker in h.brokers:
        await broker.stop()
    await engine.dispose()


def _events(keys: list[uuid.UUID], versions: range) -> list[OutgoingEvent]:
    """Each key's versions in order, the keys interleaved (as the relay writes them)."""
    return [
        new_event(notice_updated(key, version), source="aviso.test")
        for version in versions
        for key in keys
    ]


def _stranger(key: uuid.UUID) -> tuple[uuid.UUID, OutgoingEvent]:
    """An event about another notice, published under `key` (so in its partition and order)."""
    notice_id = uuid.uuid4()
    return notice_id, replace(
        new_event(notice_updated(notice_id, 2), source="aviso.test"), key=str(key)
    )


async def _produce(bootstrap: str, topic: str, events: list[OutgoingEvent]) -> None:
    await produce_raw(
        bootstrap,
        topic,
        [
            (e.key.encode(), e.payload.encode(), [(k, v.encode()) for k, v in e.headers.items()])
            for e in events
        ],
    )


async def test_ready_messages_are_applied_in_few_transactions_keeping_per_key_order(
    harness: Harness, unique: Callable[[str], str]
) -> None:
    topic, group = unique("aviso.test.batch"), unique("batch")
    keys = [uuid.uuid4() for _ in range(3)]
    events = _events(keys, range(2, 12))  # 30 messages, produced before the consumer starts
    await _produce(harness.settings.kafka_bootstrap_servers, topic, events)
    broker, consumer = harness.consumer(topic, group)
    harness.commits = 0

    await broker.start()
    await wait_for(lambda: consumer.applier.processed_total == 30, timeout=45)

    effects = await harness.effects()
    assert sorted(e[0] for e in effects) == sorted(e.message_id for e in events), "each once"
    for key in keys:
        assert [e[2] for e in effects if e[1] == str(key)] == list(range(2, 12)), "per-key order"
    # All 30 were fetched before the first was applied: a handful of transactions at most
    # (the fetch may hand them over in a few pieces), not 30.
    transactions = len({e[3] for e in effects})
    assert consumer.applier.batches_total >= 1
    assert transactions <= 5
    assert harness.commits <= 5


async def test_a_poison_message_in_a_batch_is_dead_lettered_alone_the_rest_applied_once(
    harness: Harness, unique: Callable[[str], str]
) -> None:
    topic, group = unique("aviso.test.batchpoison"), unique("batchpoison")
    key = uuid.uuid4()
    events = _events([key], range(2, 8))  # one key: one partition, in this order
    poison_notice, poison = _stranger(key)
    events.insert(2, poison)

    async def fail(uow: UnitOfWork) -> None:
        raise ValueError("cannot apply this notice")

    harness.before_effect[str(poison_notice)] = fail
    await _produce(harness.settings.kafka_bootstrap_servers, topic, events)
    broker, consumer = harness.consumer(topic, group)

    await broker.start()
    await wait_for(lambda: consumer.dead_lettered_total == 1, timeout=45)
    await wait_for(lambda: consumer.applier.processed_total == len(events) - 1, timeout=45)

    effects = await harness.effects()
    assert [e[0] for e in effects if e[1] == str(key)] == [
        e.message_id for e in events if e is not poison
    ], "the others applied once each, in order"
    assert [e for e in effects if e[1] == str(poison_notice)] == []
    # Its try in the failed batch is its first: K in all, as alone.
    assert harness.calls.count(poison.message_id) == harness.settings.consumer_max_attempts

    def ours(records: list[Any]) -> list[dict[str, Any]]:
        letters = [json.loads(r.value) for r in records]
        return [letter for letter in letters if letter["original_topic"] == topic]

    dead = await read_topic(
        harness.settings.kafka_bootstrap_servers, DLQ, until=lambda rs: len(ours(rs)) >= 1
    )
    (letter,) = ours(dead)
    assert letter["attempts"] == harness.settings.consumer_max_attempts
    assert ["ce_id", poison.message_id] in letter["original_headers"]


async def test_a_duplicate_in_a_batch_and_one_already_recorded_are_skipped(
    harness: Harness, unique: Callable[[str], str]
) -> None:
    topic, group = unique("aviso.test.batchdup"), unique("batchdup")
    key = uuid.uuid4()
    recorded, first, second = _events([key], range(2, 5))
    events = [recorded, first, second, first]  # `first` published twice (a relay retry)
    async with UnitOfWork(harness.sessions) as uow:
        await claim_message(
            uow.session, consumer=group, message_id=recorded.message_id, topic=topic
        )
        await uow.commit()
    await _produce(harness.settings.kafka_bootstrap_servers, topic, events)
    broker, consumer = harness.consumer(topic, group)

    await broker.start()
    await wait_for(lambda: consumer.applier.processed_total == 2, timeout=45)
    await wait_for(lambda: consumer.offsets.pending == 0, timeout=30)  # all four passed

    effects = await harness.effects()
    assert [e[0] for e in effects] == [first.message_id, second.message_id]
    assert harness.calls == [first.message_id, second.message_id]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_connection_lost_mid_batch_loses_nothing_and_spends_no_try(
    harness: Harness, unique: Callable[[str], str]
) -> None:
    topic, group = unique("aviso.test.batchoutage"), unique("batchoutage")
    key = uuid.uuid4()
    events = _events([key], range(2, 8))
    lost, outage = _stranger(key)
    events.insert(3, outage)
    killed: list[bool] = []

    async def kill_own_connection(uow: UnitOfWork) -> None:
        # The server ends this transaction's backend mid-batch: a real lost connection.
        if not killed:
            killed.append(True)
            await uow.session.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))

    harness.before_effect[str(lost)] = kill_own_connection
    await _produce(harness.settings.kafka_bootstrap_servers, topic, events)
    # One try only: had the outage spent it, the message would be dead-lettered.
    broker, consumer = harness.consumer(topic, group, consumer_max_attempts=1)

    await broker.start()
    await wait_for(lambda: consumer.applier.processed_total == len(events), timeout=60)

    assert killed == [True]
    assert consumer.dead_lettered_total == 0
    effects = await harness.effects()
    assert sorted(e[0] for e in effects) == sorted(e.message_id for e in events), "each once"


async def test_a_stop_mid_batch_applies_and_commits_nothing_of_it(
    harness: Harness, unique: Callable[[str], str]
) -> None:
    topic, group = unique("aviso.test.batchstop"), unique("batchstop")
    key = uuid.uuid4()
    events = _events([key], range(2, 8))
    stuck, blocked = _stranger(key)
    events.insert(3, blocked)
    reached = asyncio.Event()

    async def block_forever(uow: UnitOfWork) -> None:
        reached.set()
        await asyncio.Event().wait()

    harness.before_effect[str(stuck)] = block_forever
    await _produce(harness.settings.kafka_bootstrap_servers, topic, events)
    broker, _ = harness.consumer(topic, group, shutdown_grace_s=0.5)

    await broker.start()
    await asyncio.wait_for(reached.wait(), timeout=45)
    await broker.stop()  # cancels the handler after the grace: the batch rolls back

    assert await harness.effects() == [], "the batch's transaction never committed"
    assert sum(await committed_offsets(harness.settings.kafka_bootstrap_servers, group, topic)) == 0

    # The next member of the group reads it all again and applies each message once.
    del harness.before_effect[str(stuck)]
    again, consumer = harness.consumer(topic, group)
    await again.start()
    await wait_for(lambda: consumer.applier.processed_total == len(events), timeout=45)
    effects = await harness.effects()
    assert [e[0] for e in effects] == [e.message_id for e in events]
