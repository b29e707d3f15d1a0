"""A lingering relay (PostgreSQL, real Kafka): a key's rows committed one by one go out in
one produce call and one settling, a stop sends what lingers, and a key whose row failed
keeps its later rows behind it. Router's relay as its app wires it: two notices' events a
tenth of a second apart in one produce request, a directory change at once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.conn import AIOKafkaConnection
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.directory import DirectoryPublished
from schemas.topics import DIRECTORY, NOTICES
from services.common.db import make_session_factory
from services.common.kafka import KafkaOutboxPublisher, outbox_publisher
from services.common.outbox import OutboxRelay, OutboxRow, enqueue
from services.common.settings import CommonSettings
from services.router.app import linger_relay
from services.router.config import RouterSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import published_versions, read_topic, wait_for
from tests.support.statements import record_statements

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

DEADLINE_S = 60.0


class CountingPublisher:
    """The Kafka publisher, its calls counted; the first `failing` calls fail every row."""

    def __init__(self, kafka: KafkaOutboxPublisher, *, failing: int = 0) -> None:
        self._kafka = kafka
        self._failing = failing
        self.calls: list[list[str]] = []
        self.published: list[str] = []

    async def __call__(self, row: OutboxRow) -> None:
        raise AssertionError("a lingering relay publishes batches")

    async def publish_batch(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        raise AssertionError("a key's rows go together, not in waves")

    async def publish_keys_together(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        self.calls.append([row.message_id for row in rows])
        if len(self.calls) <= self._failing:
            return [ConnectionError("broker away") for _ in rows]
        results = await self._kafka.publish_keys_together(rows)
        self.published += [row.message_id for row in rows]
        return results


def _settlings(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("DELETE FROM outbox_messages")]


def _claims(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("WITH claimable")]


def _relay(engine: AsyncEngine, publisher: CountingPublisher, **options: Any) -> OutboxRelay:
    # A poll far beyond the test's waits: only a hand-over or a wake-up starts a round.
    defaults: dict[str, Any] = {"poll_interval_s": 120, "claim_ttl_s": 60}
    return OutboxRelay(engine=engine, publish=publisher, component="intake", **(defaults | options))


async def _commit(engine: AsyncEngine, notice_id: uuid.UUID, version: int) -> None:
    async with make_session_factory(engine)() as session, session.begin():
        await enqueue(session, notice_updated(notice_id, version), source="aviso.test")


async def test_a_key_s_rows_committed_one_by_one_go_in_one_produce_call_and_one_settling(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    publisher = CountingPublisher(outbox_publisher(broker))
    # The linger ends at three rows (the batch), far before its time: no clock involved.
    relay = _relay(engine, publisher, batch_size=3)
    relay.linger(10.0)
    statements = record_statements(engine, width=60)
    await relay.start()
    notice_id = uuid.uuid4()
    try:
        await wait_for(lambda: len(_claims(statements)) == 1, timeout=DEADLINE_S)  # at start
        statements.clear()
        for version in (2, 3, 4):
            # Each later row is leased to the relay that holds the key's earlier one.
            await _commit(engine, notice_id, version)
        await wait_for(lambda: relay.published_total == 3, timeout=DEADLINE_S)
    finally:
        await relay.stop()

    assert [len(call) for call in publisher.calls] == [3], publisher.calls
    assert len(_settlings(statements)) == 1, statements
    assert _claims(statements) == [], statements
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, notice_id, 3, timeout=DEADLINE_S
    ) == [2, 3, 4]


async def test_a_stop_publishes_what_lingers(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    publisher = CountingPublisher(outbox_publisher(broker))
    relay = _relay(engine, publisher)
    relay.linger(10.0)  # one row of a batch of 100 lingers 10 s
    await _stop_publishes_what_lingers(settings, engine, relay, publisher)


async def _stop_publishes_what_lingers(
    settings: CommonSettings, engine: AsyncEngine, relay: OutboxRelay, publisher: CountingPublisher
) -> None:
    """A row handed to `relay` (lingering) is not published until the stop, then once."""
    await relay.start()
    notice_id = uuid.uuid4()
    try:
        await _commit(engine, notice_id, 2)
        await _turns()
        assert publisher.calls == []
    finally:
        await relay.stop()

    assert relay.published_total == 1
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, notice_id, 1, timeout=DEADLINE_S
    ) == [2]


async def test_a_key_whose_row_failed_keeps_its_later_rows_behind_it(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    publisher = CountingPublisher(outbox_publisher(broker), failing=1)
    # Short leases so the claims that take the rows over come within seconds.
    relay = _relay(engine, publisher, claim_ttl_s=1.5, retry_delay_s=0.2, poll_interval_s=0.5)
    await relay.start()
    notice_id = uuid.uuid4()
    try:
        await _commit(engine, notice_id, 2)
        await wait_for(lambda: len(publisher.calls) == 1, timeout=DEADLINE_S)  # it failed
        # Handed to this relay (it holds version 2 on its retry lease), but held: version 3
        # may not go out from memory before version 2.
        await _commit(engine, notice_id, 3)
        await wait_for(lambda: relay.published_total == 2, timeout=DEADLINE_S)
    finally:
        await relay.stop()

    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, notice_id, 2, timeout=DEADLINE_S
    ) == [2, 3]
    assert len(publisher.published) == 2


class Clock:
    """The linger's clock, moved on by the test (a real one would make it a race)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _count_produce_requests(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every produce request any connection writes to the broker, from now on."""
    written: list[object] = []
    send = AIOKafkaConnection.send

    def counting(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
        if getattr(request, "API_KEY", None) == 0:  # PRODUCE
            written.append(request)
        return send(self, request, expect_response)

    monkeypatch.setattr(AIOKafkaConnection, "send", counting)
    return written


async def _turns(count: int = 5) -> None:
    # Event-loop turns, not time: the relay's loop resumes one turn after a wake-up.
    for _ in range(count):
        await asyncio.sleep(0)


def _router_s(
    engine: AsyncEngine, publisher: CountingPublisher, clock: Clock, tmp_path: Path
) -> OutboxRelay:
    relay = _relay(engine, publisher, clock=clock)
    linger_relay(relay, RouterSettings(var_dir=tmp_path))  # its default linger
    return relay


async def test_router_s_relay_sends_two_notices_events_a_tenth_of_a_second_apart_together(
    settings: CommonSettings,
    engine: AsyncEngine,
    broker: KafkaBroker,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    publisher = CountingPublisher(outbox_publisher(broker))
    clock = Clock()
    relay = _router_s(engine, publisher, clock, tmp_path)
    await relay.start()
    produced = _count_produce_requests(monkeypatch)
    first, second = uuid.uuid4(), uuid.uuid4()
    try:
        await _commit(engine, first, 2)
        clock.now += 0.1  # the next notice at 10 a second: the relay looks again then
        relay.wake()
        await _turns()
        await _commit(engine, second, 2)
        clock.now += 0.3  # both lingered long enough
        relay.wake()
        await wait_for(lambda: relay.published_total == 2, timeout=DEADLINE_S)
    finally:
        await relay.stop()

    assert [len(call) for call in publisher.calls] == [2], publisher.calls
    assert len(produced) == 1, produced
    for notice_id in (first, second):
        assert await published_versions(
            settings.kafka_bootstrap_servers, NOTICES, notice_id, 1, timeout=DEADLINE_S
        ) == [2]


async def test_router_s_relay_sends_a_directory_change_at_once_with_what_lingers(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker, tmp_path: Path
) -> None:
    publisher = CountingPublisher(outbox_publisher(broker))
    relay = _router_s(engine, publisher, Clock(), tmp_path)  # a clock that never moves
    await relay.start()
    notice_id, person_id = uuid.uuid4(), uuid.uuid4()
    change = DirectoryPublished(
        directory_id=uuid.uuid4(),
        version=1,
        person_ids=(person_id,),
        published_at=datetime.now(UTC),
    )
    try:
        await _commit(engine, notice_id, 2)
        async with make_session_factory(engine)() as session, session.begin():
            await enqueue(session, change, source="aviso.test")
        await wait_for(lambda: relay.published_total == 2, timeout=DEADLINE_S)
    finally:
        await relay.stop()

    assert [len(call) for call in publisher.calls] == [2], publisher.calls
    records = await read_topic(
        settings.kafka_bootstrap_servers,
        DIRECTORY,
        until=lambda rs: len(rs) >= 1,
        key_filter=lambda key: key == str(change.directory_id).encode(),
        timeout=DEADLINE_S,
    )
    assert [json.loads(r.value)["person_ids"] for r in records] == [[str(person_id)]]


async def test_router_s_relay_publishes_what_lingers_when_it_stops(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker, tmp_path: Path
) -> None:
    publisher = CountingPublisher(outbox_publisher(broker))
    relay = _router_s(engine, publisher, Clock(), tmp_path)  # the linger never ends on its own
    await _stop_publishes_what_lingers(settings, engine, relay, publisher)
