"""Consumer offsets committed in batches, against a real Kafka broker and real PostgreSQL:
every N messages, after T ms, before a rebalance and on stop; never past a message not
yet processed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from faststream.kafka import KafkaBroker

from schemas.notices import NoticeUpdated
from services.common.cloudevents import Envelope, new_event
from services.common.db import UnitOfWork, make_engine, make_session_factory
from services.common.kafka import EventConsumer, make_broker
from services.common.migrations import upgrade
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import committed_offsets, produce_raw, wait_for

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

KEY = b"one-key"  # every record on one partition: offsets are easy to reason about


class Consumers:
    """Builds EventConsumers on their own brokers; stops them all at the end."""

    def __init__(self, settings: CommonSettings, sessions: Any) -> None:
        self.settings = settings
        self.sessions = sessions
        self.brokers: list[KafkaBroker] = []

    def build(self, **overrides: Any) -> tuple[KafkaBroker, EventConsumer]:
        settings = self.settings.model_copy(update=overrides)
        broker = make_broker(settings, service="test")
        self.brokers.append(broker)
        consumer = EventConsumer(
            broker=broker, sessions=self.sessions, settings=settings, service="test"
        )
        return broker, consumer


@pytest.fixture
async def consumers(
    database_url: str | None, kafka_bootstrap: str, make_settings: Callable[..., CommonSettings]
) -> AsyncIterator[Consumers]:
    settings = make_settings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    made = Consumers(settings, make_session_factory(engine))
    yield made
    for broker in made.brokers:
        await broker.stop()
    await engine.dispose()


async def produce(bootstrap: str, topic: str, count: int) -> None:
    events = [new_event(notice_updated(uuid.uuid4(), 2), source="aviso.test") for _ in range(count)]
    await produce_raw(
        bootstrap,
        topic,
        [
            (KEY, e.payload.encode(), [(k, v.encode()) for k, v in e.headers.items()])
            for e in events
        ],
    )


async def committed(bootstrap: str, group: str, topic: str) -> int:
    """The group's committed offset on the one partition in use (KEY's; 0: none)."""
    return max(await committed_offsets(bootstrap, group, topic))


def counting(seen: list[str]) -> Callable[..., Any]:
    async def handle(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        seen.append(envelope.id)

    return handle


async def test_offsets_are_committed_every_n_messages_not_after_each(
    consumers: Consumers, unique: Callable[[str], str]
) -> None:
    topic, group = unique("aviso.test.offsets"), unique("offsets-n")
    bootstrap = consumers.settings.kafka_bootstrap_servers
    # T far beyond the test: only the count can trigger a commit. One message per
    # transaction, so the count is checked after each (a batch is checked once, below).
    broker, consumer = consumers.build(
        consumer_commit_every=5, consumer_commit_interval_ms=600_000, consumer_batch_max=1
    )
    seen: list[str] = []
    consumer.on("notice.updated", topic=topic, group_id=group)(counting(seen))
    await produce(bootstrap, topic, 12)
    await broker.start()

    await wait_for(lambda: len(seen) == 12, timeout=45)
    await wait_for(lambda: consumer.offsets.commits == 2, timeout=30)
    assert await committed(bootstrap, group, topic) == 10, "two batches of five, no more"
    assert consumer.offsets.pending == 2

    # Stopping commits the rest.
    await consumer.finish()
    assert await committed(bootstrap, group, topic) == 12


async def test_the_tail_is_committed_after_the_interval(
    consumers: Consumers, unique: Callable[[str], str]
) -> None:
    topic, group = unique("aviso.test.offsets"), unique("offsets-t")
    bootstrap = consumers.settings.kafka_bootstrap_servers
    broker, consumer = consumers.build(consumer_commit_every=1_000, consumer_commit_interval_ms=200)
    seen: list[str] = []
    consumer.on("notice.updated", topic=topic, group_id=group)(counting(seen))
    await produce(bootstrap, topic, 3)
    await broker.start()

    await wait_for(lambda: len(seen) == 3, timeout=45)

    async def all_committed() -> bool:
        return await committed(bootstrap, group, topic) == 3

    await wait_for(all_committed, timeout=30)
    assert consumer.offsets.commits < 3, "the three messages share commits"


async def test_a_rebalance_commits_what_was_processed_before_the_partitions_move(
    consumers: Consumers, unique: Callable[[str], str]
) -> None:
    topic, group = unique("aviso.test.offsets"), unique("offsets-r")
    bootstrap = consumers.settings.kafka_bootstrap_servers
    # Neither the count nor the interval commits during the test: only the rebalance can.
    first_broker, first = consumers.build(
        consumer_commit_every=1_000, consumer_commit_interval_ms=600_000
    )
    seen: list[str] = []
    first.on("notice.updated", topic=topic, group_id=group)(counting(seen))
    await produce(bootstrap, topic, 4)
    await first_broker.start()
    await wait_for(lambda: len(seen) == 4, timeout=45)
    assert await committed(bootstrap, group, topic) == 0

    second_broker, second = consumers.build(
        consumer_commit_every=1_000, consumer_commit_interval_ms=600_000
    )
    second.on("notice.updated", topic=topic, group_id=group)(counting(seen))
    await second_broker.start()  # joins the group: the first member's partitions are revoked

    async def all_committed() -> bool:
        return await committed(bootstrap, group, topic) == 4

    await wait_for(all_committed, timeout=45)
    assert len(seen) == 4, "nothing delivered twice: the new owner starts after the commit"
