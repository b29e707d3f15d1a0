"""A relay's linger (when handed rows go, which keys go through a claim) and the Kafka
publisher's one record batch per partition, on fakes: no broker, no database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from schemas.topics import DIRECTORY
from services.common.kafka import KafkaOutboxPublisher
from services.common.outbox import OutboxRow
from services.common.outbox.lingering import Lingering
from services.common.outbox.ordering import KeysTogetherPublisher
from services.common.outbox.wakeup import Wakeup
from services.router.app import linger_relay
from services.router.config import RouterSettings

DEADLINE_S = 30.0


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


async def test_router_s_linger_holds_a_notice_s_events_until_the_next_notice_at_10_a_second(
    tmp_path: Path,
) -> None:
    # Router's default linger, as its settings give it: a notice's events (handed over at
    # 0) still wait when the next notice's come 100 ms later, and go once the linger ends.
    linger_s = RouterSettings(var_dir=tmp_path).router_outbox_linger_ms / 1000
    clock = Clock()
    lingering = Lingering(linger_s=linger_s, rows=100, lease_s=2.0, clock=clock)
    woken, stopping = Wakeup(), asyncio.Event()
    handed = [1]
    waiting = asyncio.create_task(
        lingering.wait(
            first_at=clock.now, count=lambda: len(handed), woken=woken, stopping=stopping
        )
    )
    await asyncio.sleep(0)
    clock.now += 0.1
    handed.append(2)  # the next notice's events
    woken.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiting.done()
    clock.now += linger_s
    woken.set()
    await asyncio.wait_for(waiting, timeout=DEADLINE_S)


async def test_a_row_of_an_at_once_topic_ends_the_linger() -> None:
    clock = Clock()
    lingering = Lingering(
        linger_s=0.3, rows=100, lease_s=2.0, at_once=("aviso.directory.v1",), clock=clock
    )
    assert lingering.at_once(["aviso.alerts.v1", "aviso.directory.v1"])
    assert not lingering.at_once(["aviso.alerts.v1"])
    assert not Lingering(linger_s=0.3, rows=100, lease_s=2.0).at_once(["aviso.directory.v1"])
    woken, stopping = Wakeup(), asyncio.Event()
    urgent = False
    waiting = asyncio.create_task(
        lingering.wait(
            first_at=clock.now,
            count=lambda: 1,
            woken=woken,
            stopping=stopping,
            urgent=lambda: urgent,
        )
    )
    await asyncio.sleep(0)
    assert not waiting.done()
    urgent = True  # a directory change handed over: the clock has not moved
    woken.set()
    await asyncio.wait_for(waiting, timeout=DEADLINE_S)


class RecordedLinger:
    def __init__(self) -> None:
        self.calls: list[tuple[float, tuple[str, ...]]] = []

    def linger(self, seconds: float, *, at_once: Iterable[str] = ()) -> None:
        self.calls.append((seconds, tuple(at_once)))


def test_router_s_relay_lingers_at_most_a_sixth_of_the_lease_and_sends_directory_changes_at_once(
    tmp_path: Path,
) -> None:
    relay = RecordedLinger()
    linger_relay(relay, RouterSettings(var_dir=tmp_path))  # type: ignore[arg-type]
    linger_relay(relay, RouterSettings(var_dir=tmp_path, outbox_claim_ttl_s=0.6))  # type: ignore[arg-type]
    linger_relay(relay, RouterSettings(var_dir=tmp_path, router_outbox_linger_ms=0))  # type: ignore[arg-type]
    assert relay.calls == [
        (0.3, (DIRECTORY,)),
        (pytest.approx(0.1), (DIRECTORY,)),
        (0.0, (DIRECTORY,)),
    ]


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
