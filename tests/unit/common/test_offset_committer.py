"""OffsetCommitter: a batch's offsets marked at once, and only assigned partitions committed."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.offsets import OffsetCommitter


class FakeConsumer(AIOKafkaConsumer):  # type: ignore[misc]
    """An AIOKafkaConsumer that never connects: its assignment and commits, in memory."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        unknown = set(offsets or {}) - self.assigned
        if unknown:  # as aiokafka: the whole commit is refused
            raise RuntimeError(f"Partition {unknown} is not assigned")
        self.commits.append(dict(offsets or {}))


class Record:
    def __init__(self, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = "t", partition, offset


async def test_a_batch_is_marked_at_once_and_committed_when_it_reaches_the_count() -> None:
    committer = OffsetCommitter(every=5, interval_s=600)
    consumer = FakeConsumer({TopicPartition("t", 0), TopicPartition("t", 1)})
    records: list[Any] = [Record(0, 10), Record(0, 11), Record(1, 3)]

    await committer.processed_all(consumer, records)
    assert committer.pending == 3
    assert consumer.commits == []

    await committer.processed_all(consumer, [Record(0, 12), Record(1, 4)])

    assert consumer.commits == [{TopicPartition("t", 0): 13, TopicPartition("t", 1): 5}]
    assert committer.pending == 0


async def test_a_partition_taken_away_does_not_fail_the_commit_of_the_others() -> None:
    committer = OffsetCommitter(every=100, interval_s=600)
    consumer = FakeConsumer({TopicPartition("t", 0), TopicPartition("t", 1)})
    await committer.processed_all(consumer, [Record(0, 7), Record(1, 2)])
    consumer.assigned = {TopicPartition("t", 0)}  # a rebalance moved partition 1 away

    await committer.flush()

    assert consumer.commits == [{TopicPartition("t", 0): 8}]
