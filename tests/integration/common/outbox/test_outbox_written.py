"""A hand-over's "written" on a real broker (PostgreSQL): the committing task resumes only
after the producer has written the produce request carrying its rows, and before that
row was settled as acknowledged; without a hand-over, or after one to a relay in mid-round,
it does not wait."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.conn import AIOKafkaConnection
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import make_session_factory
from services.common.kafka import outbox_publisher
from services.common.outbox import OutboxRelay, OutboxRow, enqueue, handed_written
from services.common.outbox.written import SENDER_TURNS
from tests.support.events import notice_updated
from tests.support.kafka_io import wait_for

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

DEADLINE_S = 60.0


class _ProduceWrites:
    """Records, in order, each produce request aiokafka writes to the broker's socket."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[str] = []
        send = AIOKafkaConnection.send
        events = self.events

        def recording_send(conn: Any, request: Any, expect_response: bool = True) -> Any:
            produce = type(request).__name__.startswith("ProduceRequest")
            answer = send(conn, request, expect_response)
            if produce:
                events.append("produce written")
            return answer

        monkeypatch.setattr(AIOKafkaConnection, "send", recording_send)


async def _commit_one(engine: AsyncEngine) -> None:
    async with make_session_factory(engine)() as session, session.begin():
        await enqueue(session, notice_updated(uuid.uuid4(), 2), source="aviso.test")


async def test_the_committing_task_resumes_after_the_produce_request_is_written(
    engine: AsyncEngine, broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = OutboxRelay(
        engine=engine, publish=outbox_publisher(broker), component="intake",
        poll_interval_s=120, claim_ttl_s=60,
    )  # fmt: skip
    await relay.start()
    try:
        # The first record of a topic may wait for its metadata: not the path measured.
        await _commit_one(engine)
        await wait_for(lambda: relay.published_total == 1, timeout=DEADLINE_S)
        await wait_for(lambda: relay._wake.waiting, timeout=DEADLINE_S)
        writes = _ProduceWrites(monkeypatch)

        await _commit_one(engine)
        # A generous bound: on time the signal, not the bound, ends the wait.
        wrote = await handed_written(within_s=DEADLINE_S)
        writes.events.append("resumed")

        assert wrote is True
        # Written first (the sender's turns counted in SENDER_TURNS), and the wait did not
        # cover the broker's answer: the row is not settled as sent yet.
        assert writes.events == ["produce written", "resumed"], (SENDER_TURNS, writes.events)
        assert relay.published_total == 1
        await wait_for(lambda: relay.published_total == 2, timeout=DEADLINE_S)
        # Nothing handed over since: no wait at all.
        assert await handed_written(within_s=DEADLINE_S) is True
    finally:
        await relay.stop()


async def test_the_wait_ends_at_its_bound_when_no_relay_round_comes(
    engine: AsyncEngine, broker: KafkaBroker
) -> None:
    # A relay that lingers far longer than the bound: its round cannot come in time.
    relay = OutboxRelay(
        engine=engine, publish=outbox_publisher(broker), component="intake",
        poll_interval_s=120, claim_ttl_s=60, linger_s=5.0,
    )  # fmt: skip
    await relay.start()
    try:
        await wait_for(lambda: relay._wake.waiting, timeout=DEADLINE_S)
        await _commit_one(engine)
        started = time.monotonic()
        wrote = await handed_written(within_s=0.05)
        assert wrote is False
        assert time.monotonic() - started < DEADLINE_S  # not the linger's 5 s: the bound
        assert relay.published_total == 0
    finally:
        await relay.stop()
    assert relay.published_total == 1  # the stop published it


class _Held:
    """A batch publisher whose rounds wait for `gate` (a round in flight, its answer due)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.batches = 0

    async def publish_batch(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        self.batches += 1
        await self.gate.wait()
        return [None] * len(rows)


async def test_a_hand_over_to_a_relay_in_mid_round_is_not_waited_for(engine: AsyncEngine) -> None:
    publisher = _Held()
    relay = OutboxRelay(
        engine=engine, publish=publisher, component="intake", poll_interval_s=120, claim_ttl_s=60
    )
    await relay.start()
    try:
        await wait_for(lambda: relay._wake.waiting, timeout=DEADLINE_S)
        await _commit_one(engine)
        await wait_for(lambda: publisher.batches == 1, timeout=DEADLINE_S)  # in mid-round
        await _commit_one(engine)
        # Its rows go only after the round in flight: no signal, so no wait at all (a wait
        # would end at the bound, the round still held, and say False).
        assert await handed_written(within_s=0.5) is True
        assert publisher.batches == 1
        publisher.gate.set()
        await wait_for(lambda: relay.published_total == 2, timeout=DEADLINE_S)
    finally:
        publisher.gate.set()
        await relay.stop()
