"""A round's rows of one key go out in order, and none after one of them failed (the
relay's waves, a per-row publish function, and the Kafka publisher's hand-over)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.common.kafka import KafkaOutboxPublisher
from services.common.outbox import OutboxRow
from services.common.outbox.ordering import HeldBehind, in_waves, one_key_at_a_time


@dataclass(frozen=True)
class Row:
    id: int
    key: str


class Refused(Exception):
    pass


async def test_a_key_s_later_rows_wait_for_its_earlier_ones_to_be_acknowledged() -> None:
    rows = [Row(1, "a"), Row(2, "b"), Row(3, "a"), Row(4, "a"), Row(5, "c")]
    batches: list[list[int]] = []

    async def publish_batch(batch: Sequence[Row]) -> list[object]:
        batches.append([row.id for row in batch])
        return [None] * len(batch)

    assert await in_waves(rows, publish_batch) == [None] * 5
    # One row of each key per produce round, each key's in id order.
    assert batches == [[1, 2, 5], [3], [4]]


async def test_rows_of_distinct_keys_go_in_one_round() -> None:
    batches: list[int] = []

    async def publish_batch(batch: Sequence[Row]) -> list[object]:
        batches.append(len(batch))
        return [None] * len(batch)

    await in_waves([Row(n, str(n)) for n in range(10)], publish_batch)
    assert batches == [10]


async def test_a_failed_row_holds_its_key_s_later_rows_back_and_no_other_key() -> None:
    rows = [Row(1, "a"), Row(2, "b"), Row(3, "a"), Row(4, "b"), Row(5, "a")]
    sent: list[int] = []
    refused = Refused("broker said no")

    async def publish_batch(batch: Sequence[Row]) -> list[object]:
        sent.extend(row.id for row in batch)
        return [refused if row.id == 1 else None for row in batch]

    results = await in_waves(rows, publish_batch)

    assert results[0] is refused
    assert isinstance(results[2], HeldBehind)
    assert isinstance(results[4], HeldBehind)
    assert [results[1], results[3]] == [None, None]
    assert sent == [1, 2, 4], "nothing of key a after its failed row"


async def test_one_by_one_sends_a_key_s_rows_in_turn_and_stops_the_key_at_a_failure() -> None:
    rows = [Row(1, "a"), Row(2, "a"), Row(3, "b"), Row(4, "a"), Row(5, "b")]
    in_flight: dict[str, int] = {}
    order: list[int] = []
    release = asyncio.Event()
    b_done = asyncio.Event()

    async def publish(row: Row) -> None:
        assert row.key not in in_flight, "two rows of one key in flight at once"
        in_flight[row.key] = row.id
        try:
            if row.id == 1:
                await release.wait()  # key a's first row is slow: b must not wait for it
            order.append(row.id)
            if order == [3, 5]:
                b_done.set()
            if row.id == 2:
                raise Refused("no")
        finally:
            del in_flight[row.key]

    sending = asyncio.create_task(one_key_at_a_time(rows, publish))
    await asyncio.wait_for(b_done.wait(), timeout=30)
    release.set()
    results = await sending

    assert order == [3, 5, 1, 2]
    assert results[0] is None
    assert results[2] is None
    assert results[4] is None
    assert isinstance(results[1], Refused)
    assert isinstance(results[3], HeldBehind), "row 4 must not follow its failed predecessor"


class FakeProducer:
    """Refuses `refuse` at hand-over; acknowledges every other record at once."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.handed: list[bytes] = []

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: object) -> Any:
        if value.decode() in self.refuse:
            raise BufferError("the producer's buffer is full")
        self.handed.append(value)
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class PublisherOver(KafkaOutboxPublisher):
    def __init__(self, producer: FakeProducer | None) -> None:
        self.producer = producer
        self.one_by_one: list[str] = []

    def _producer(self) -> Any:
        return self.producer

    async def __call__(self, row: OutboxRow) -> None:
        # The first row is the slowest to be acknowledged: sent side by side, it would be last.
        await asyncio.sleep(0.05 if row.payload == "1" else 0)
        self.one_by_one.append(row.payload)


def _outbox_row(n: int, key: str) -> OutboxRow:
    return OutboxRow(n, f"m{n}", "aviso.notices.v1", key, "notice.updated", {}, str(n))


async def test_the_kafka_publisher_hands_over_nothing_of_a_key_after_a_refused_record() -> None:
    producer = FakeProducer(refuse={"1"})
    publisher = PublisherOver(producer)
    rows = [_outbox_row(1, "a"), _outbox_row(2, "b"), _outbox_row(3, "a")]

    results = await publisher.publish_batch(rows)

    assert isinstance(results[0], BufferError)
    assert results[1] is None
    assert isinstance(results[2], HeldBehind)
    assert producer.handed == [b"2"], "key a's later record must not reach the producer"


async def test_the_kafka_publisher_unconnected_sends_a_key_s_rows_in_order() -> None:
    publisher = PublisherOver(None)
    rows = [_outbox_row(1, "a"), _outbox_row(2, "a"), _outbox_row(3, "a")]

    assert await publisher.publish_batch(rows) == [None, None, None]
    assert publisher.one_by_one == ["1", "2", "3"]
