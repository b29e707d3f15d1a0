"""A relay's linger (when handed rows go, which keys go through a claim) and the Kafka
publisher's one record batch per partition, on fakes: no broker, no database."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.common.kafka import KafkaOutboxPublisher
from services.common.outbox import OutboxRow
from services.common.outbox.lingering import Lingering
from services.common.outbox.ordering import KeysTogetherPublisher
from services.common.outbox.wakeup import Wakeup


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_linger_longer_than_a_sixth_of_the_lease_is_refused() -> None:
    with pytest.raises(ValueError, match="sixth"):
        Lingering(linger_s=0.5, rows=10, lease_s=2.0)
    assert Lingering(linger_s=0.3, rows=10, lease_s=2.0).linger_s == 0.3


async def test_the_linger_ends_at_the_batch_s_rows_at_its_time_or_at_a_stop() -> None:
    clock = Clock()
    lingering = Lingering(linger_s=0.3, rows=3, lease_s=2.0, clock=clock)
    woken, stopping = Wakeup(), asyncio.Event()
    # A full batch goes at once, however young.
    await lingering.wait(first_at=clock.now, count=lambda: 3, woken=woken, stopping=stopping)
    # Its time is up: at once too.
    await lingering.wait(first_at=clock.now - 0.3, count=lambda: 1, woken=woken, stopping=stopping)
    # A stop ends it; so does a hand-over that fills the batch.
    handed = [1]

    def count() -> int:
        return len(handed)

    waiting = asyncio.create_task(
        lingering.wait(first_at=clock.now, count=count, woken=woken, stopping=stopping)
    )
    await asyncio.sleep(0)
    assert not waiting.done()
    handed += [2, 3]
    woken.set()
    # One loop turn: a hand-over resumes the linger's wait at once (`wait_for` took three).
    await asyncio.sleep(0)
    assert waiting.done()
    stopping.set()
    await lingering.wait(first_at=clock.now, count=lambda: 1, woken=woken, stopping=stopping)


def test_a_held_key_stays_held_twice_the_lease_after_its_last_turned_away_row() -> None:
    clock = Clock()
    lingering = Lingering(linger_s=0.0, rows=10, lease_s=2.0, clock=clock)
    assert not lingering.held("a")
    lingering.hold_all(["a", "b"])
    clock.now += 3.0
    lingering.hold("a")  # another of a's rows turned away: a's hold starts again
    clock.now += 1.5
    assert lingering.held("a")
    assert not lingering.held("b")
    clock.now += 2.6
    assert not lingering.held("a")


class BatchBuilder:
    def __init__(self, room: int) -> None:
        self.room = room
        self.values: list[bytes] = []

    def append(self, *, timestamp: None, key: bytes, value: bytes, headers: object) -> Any:
        if len(self.values) == self.room:
            return None
        self.values.append(value)
        return object()


class BatchingProducer:
    """Partition = the key's first letter; `fail` partitions' batches fail."""

    def __init__(self, *, room: int = 10, fail: frozenset[int] = frozenset()) -> None:
        self.room = room
        self.fail = fail
        self.batches: list[tuple[int, list[bytes]]] = []
        self.sent_one_by_one: list[bytes] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def _partition(self, topic: str, partition: None, key: bytes, *_: object) -> int:
        return 0 if key.startswith(b"a") else 1

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.room)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        self.batches.append((partition, batch.values))
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if partition in self.fail:
            done.set_exception(ConnectionError("leader away"))
        else:
            done.set_result(None)
        return done

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: object) -> Any:
        self.sent_one_by_one.append(value)
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class PublisherOver(KafkaOutboxPublisher):
    def __init__(self, producer: BatchingProducer) -> None:
        self.producer = producer

    def _producer(self) -> Any:
        return self.producer


def _row(n: int, key: str) -> OutboxRow:
    return OutboxRow(n, f"m{n}", "aviso.alerts.v1", key, "alert.delivered", {}, str(n))


async def test_a_partition_s_rows_go_in_one_record_batch_each_failing_or_landing_whole() -> None:
    producer = BatchingProducer(fail=frozenset({1}))
    publisher = PublisherOver(producer)
    assert isinstance(publisher, KeysTogetherPublisher)
    rows = [_row(1, "a1"), _row(2, "b1"), _row(3, "a1"), _row(4, "a2"), _row(5, "b1")]

    results = await publisher.publish_keys_together(rows)

    assert producer.batches == [(0, [b"1", b"3", b"4"]), (1, [b"2", b"5"])]
    assert [r is None for r in results] == [True, False, True, True, False]
    assert all(isinstance(results[i], ConnectionError) for i in (1, 4))


async def test_rows_that_do_not_fit_one_batch_go_in_waves() -> None:
    producer = BatchingProducer(room=1)
    publisher = PublisherOver(producer)
    rows = [_row(1, "a1"), _row(2, "a1")]

    assert await publisher.publish_keys_together(rows) == [None, None]
    assert producer.sent_one_by_one == [b"1", b"2"]
