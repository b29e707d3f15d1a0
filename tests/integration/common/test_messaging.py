"""Outbox, inbox, DLQ and consumer offsets against a real Kafka broker and real databases."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from schemas.notices import NoticeUpdated
from schemas.topics import DLQ, NOTICES
from services.common.cloudevents import Envelope, new_event
from services.common.db import UnitOfWork, make_engine, make_session_factory
from services.common.kafka import EventConsumer, make_broker, outbox_publisher
from services.common.migrations import upgrade
from services.common.outbox import OutboxRelay, enqueue
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import produce_raw, read_topic, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

EFFECTS = sa.table(
    "test_effects", sa.column("message_id"), sa.column("notice_id"), sa.column("version")
)


@dataclass
class Harness:
    settings: CommonSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    broker: KafkaBroker
    consumer: EventConsumer
    relays: list[OutboxRelay] = field(default_factory=list)

    def relay(self, cls: type[OutboxRelay] = OutboxRelay, **kwargs: Any) -> OutboxRelay:
        engine = kwargs.pop("engine", self.engine)
        relay = cls(
            engine=engine, publish=outbox_publisher(self.broker), component="intake", **kwargs
        )
        self.relays.append(relay)
        return relay

    async def effects(self, notice_ids: set[str]) -> list[tuple[str, str, int]]:
        async with self.sessions() as session:
            rows = await session.execute(
                sa.select(EFFECTS.c.message_id, EFFECTS.c.notice_id, EFFECTS.c.version)
            )
            return [tuple(r) for r in rows if r.notice_id in notice_ids]  # type: ignore[misc]


@pytest.fixture
async def harness(
    database_url: str | None, kafka_bootstrap: str, make_settings: Callable[..., CommonSettings]
) -> AsyncIterator[Harness]:
    settings = make_settings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE TABLE test_effects "
                "(message_id VARCHAR(64), notice_id VARCHAR(64), version INTEGER)"
            )
        )
    sessions = make_session_factory(engine)
    broker = make_broker(settings, service="test")
    consumer = EventConsumer(broker=broker, sessions=sessions, settings=settings, service="test")
    h = Harness(settings, engine, sessions, broker, consumer)
    yield h
    for relay in h.relays:
        await relay.stop()
    await broker.stop()
    await engine.dispose()


def record_effect(notice_ids: set[str], calls: list[str] | None = None) -> Callable[..., Any]:
    async def handle(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        session = uow.session
        if str(envelope.data.notice_id) not in notice_ids:
            return
        if calls is not None:
            calls.append(envelope.id)
        await session.execute(
            sa.insert(EFFECTS).values(
                message_id=envelope.id,
                notice_id=str(envelope.data.notice_id),
                version=envelope.data.version,
            )
        )

    return handle


async def test_outbox_to_kafka_to_consumer_round_trip(
    harness: Harness, unique: Callable[[str], str]
) -> None:
    notice_id = uuid.uuid4()
    ids = {str(notice_id)}
    harness.consumer.on("notice.updated", topic=NOTICES, group_id=unique("roundtrip"))(
        record_effect(ids)
    )
    await harness.broker.connect()
    relay = harness.relay()
    await relay.start()
    await harness.broker.start()

    async with harness.sessions() as session, session.begin():
        sent = [
            await enqueue(
                session, notice_updated(notice_id, v), source="aviso.test", correlation_id="corr-1"
            )
            for v in (2, 3, 4)
        ]

    await wait_for(lambda: _count(harness, ids, 3), timeout=45)
    effects = await harness.effects(ids)
    assert sorted(e[2] for e in effects) == [2, 3, 4]
    assert {e[0] for e in effects} == {s.message_id for s in sent}

    # What went over the wire is a CloudEvent in binary mode with our correlation id.
    records = await read_topic(
        harness.settings.kafka_bootstrap_servers,
        NOTICES,
        until=lambda rs: len(rs) >= 3,
        key_filter=lambda k: k == str(notice_id).encode(),
    )
    headers = {k: v.decode() for k, v in records[0].headers}
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "notice.updated"
    assert headers["ce_subject"] == str(notice_id)
    assert headers["ce_correlationid"] == "corr-1"
    assert json.loads(records[0].value)["notice_id"] == str(notice_id)


async def _count(harness: Harness, ids: set[str], expected: int) -> bool:
    return len(await harness.effects(ids)) >= expected


class CrashAfterPublish(OutboxRelay):
    """A relay that dies after Kafka acknowledged but before it deleted the rows."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._settling.settle = self._killed  # type: ignore[method-assign]

    async def _killed(self, sent: list[int], failed: list[Any], *, defer: bool = False) -> None:
        raise RuntimeError("relay killed between publish and mark-sent")


async def test_relay_crash_between_publish_and_mark_sent_duplicates_on_topic_not_in_effect(
    harness: Harness, unique: Callable[[str], str]
) -> None:
    notice_id = uuid.uuid4()
    ids = {str(notice_id)}
    harness.consumer.on("notice.updated", topic=NOTICES, group_id=unique("crash"))(
        record_effect(ids)
    )
    await harness.broker.connect()
    await harness.broker.start()

    async with harness.sessions() as session, session.begin():
        outgoing = await enqueue(session, notice_updated(notice_id, 2), source="aviso.test")

    crashing = harness.relay(CrashAfterPublish, claim_ttl_s=0.5)
    with pytest.raises(RuntimeError, match="killed"):
        await crashing.relay_once()

    # A second relay takes over once the dead relay's claim expires and publishes again.
    survivor = harness.relay()
    await survivor.start()

    records = await read_topic(
        harness.settings.kafka_bootstrap_servers,
        NOTICES,
        until=lambda rs: len(rs) >= 2,
        key_filter=lambda k: k == str(notice_id).encode(),
    )
    ce_ids = [dict(r.headers)["ce_id"].decode() for r in records]
    assert ce_ids == [outgoing.message_id, outgoing.message_id], (
        "the crash should yield a duplicate"
    )

    await wait_for(lambda: _count(harness, ids, 1), timeout=30)
    await _settle_consumers()
    assert len(await harness.effects(ids)) == 1, "the inbox must absorb the duplicate"


async def _settle_consumers() -> None:
    import asyncio

    await asyncio.sleep(2.0)


async def test_two_relays_keep_per_key_order(harness: Harness) -> None:
    keys = [uuid.uuid4() for _ in range(5)]
    versions = range(2, 22)
    # Interleaved across keys, in several transactions, as concurrent use cases would write.
    for version in versions:
        async with harness.sessions() as session, session.begin():
            for notice_id in keys:
                await enqueue(session, notice_updated(notice_id, version), source="aviso.test")

    await harness.broker.connect()
    second_engine = make_engine(harness.settings, "intake")
    try:
        first = harness.relay(batch_size=7)
        second = harness.relay(batch_size=7, engine=second_engine)
        await first.start()
        await second.start()
        wanted = {str(k).encode() for k in keys}
        total = len(keys) * len(versions)
        records = await read_topic(
            harness.settings.kafka_bootstrap_servers,
            NOTICES,
            until=lambda rs: len(rs) >= total,
            key_filter=lambda k: k in wanted,
            timeout=60,
        )
        await first.stop()
        await second.stop()
    finally:
        await second_engine.dispose()

    assert len(records) == total
    by_key: dict[bytes, list[int]] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(json.loads(record.value)["version"])
    for key, seen in by_key.items():
        assert seen == list(versions), f"key {key!r} out of order: {seen}"
    # Both relays competed for the same rows; between them each row went out once.
    assert first.published_total + second.published_total == total


async def test_poison_message_goes_to_dlq_after_k_attempts_and_partition_moves_on(
    harness: Harness, unique: Callable[[str], str]
) -> None:
    topic = unique("aviso.test.poison")
    group = unique("poison")
    poison_id, good_id = uuid.uuid4(), uuid.uuid4()
    ids = {str(poison_id), str(good_id)}
    calls: list[str] = []
    effect = record_effect(ids, calls)

    async def handler(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        await effect(envelope, uow)
        if envelope.data.notice_id == poison_id:
            raise ValueError("cannot apply this notice")

    harness.consumer.on("notice.updated", topic=topic, group_id=group)(handler)
    # One key, so all three records share a partition: the good one waits behind the bad ones.
    key = b"same-key"
    garbage = new_event(notice_updated(good_id, 2), source="aviso.test")
    poison = new_event(notice_updated(poison_id, 2), source="aviso.test")
    good = new_event(notice_updated(good_id, 3), source="aviso.test")
    encode = lambda h: [(k, v.encode()) for k, v in h.items()]  # noqa: E731
    await produce_raw(
        harness.settings.kafka_bootstrap_servers,
        topic,
        [
            (key, b"{not json", encode(garbage.headers)),
            (key, poison.payload.encode(), encode(poison.headers)),
            (key, good.payload.encode(), encode(good.headers)),
        ],
    )
    await harness.broker.start()

    await wait_for(lambda: _has_version(harness, good_id, 3), timeout=45)
    assert calls.count(poison.message_id) == harness.settings.consumer_max_attempts
    effects = await harness.effects(ids)
    assert [e for e in effects if e[1] == str(poison_id)] == [], "failed attempts must roll back"

    def ours(records: list[Any]) -> list[dict[str, Any]]:
        letters = [json.loads(r.value) for r in records]
        return [letter for letter in letters if letter["original_topic"] == topic]

    dead = await read_topic(
        harness.settings.kafka_bootstrap_servers, DLQ, until=lambda rs: len(ours(rs)) >= 2
    )
    letters = ours(dead)
    assert len(letters) == 2
    by_error = {letter["error_type"]: letter for letter in letters}
    assert by_error["InvalidEnvelope"]["attempts"] == 1
    assert by_error["ValueError"]["attempts"] == harness.settings.consumer_max_attempts
    assert by_error["ValueError"]["error_message"] == "cannot apply this notice"
    assert ["ce_id", poison.message_id] in by_error["ValueError"]["original_headers"]
    assert by_error["ValueError"]["consumer_group"] == group


async def _has_version(harness: Harness, notice_id: uuid.UUID, version: int) -> bool:
    return any(e[2] == version for e in await harness.effects({str(notice_id)}))


async def test_replayed_dead_letter_is_applied_once_the_cause_is_fixed(
    harness: Harness, unique: Callable[[str], str]
) -> None:
    from services.common.dlq import read_dead_letters, replay

    topic, group = unique("aviso.test.replay"), unique("replay")
    notice_id = uuid.uuid4()
    ids = {str(notice_id)}
    broken = {"yes": True}
    effect = record_effect(ids)

    async def handler(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        if broken["yes"]:
            raise RuntimeError("downstream not ready")
        await effect(envelope, uow)

    harness.consumer.on("notice.updated", topic=topic, group_id=group)(handler)
    event = new_event(notice_updated(notice_id, 2), source="aviso.test")
    await produce_raw(
        harness.settings.kafka_bootstrap_servers,
        topic,
        [
            (
                event.key.encode(),
                event.payload.encode(),
                [(k, v.encode()) for k, v in event.headers.items()],
            )
        ],
    )
    await harness.broker.start()
    bootstrap = harness.settings.kafka_bootstrap_servers

    async def letters() -> list[Any]:
        return [
            e.letter for e in await read_dead_letters(bootstrap) if e.letter.original_topic == topic
        ]

    await wait_for(letters, timeout=45)
    assert await harness.effects(ids) == []

    broken["yes"] = False
    assert await replay(bootstrap, await letters()) == 1
    await wait_for(lambda: _count(harness, ids, 1), timeout=45)
    effects = await harness.effects(ids)
    assert [e[0] for e in effects] == [event.message_id], "replayed with its original message id"
