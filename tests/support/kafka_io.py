"""Reading and writing raw Kafka records in tests (what is really on a topic)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

__all__ = ["committed_offsets", "produce_raw", "published_versions", "read_topic", "wait_for"]


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord]], bool],
    timeout: float = 30.0,
    key_filter: Callable[[bytes | None], bool] | None = None,
) -> list[ConsumerRecord]:
    """Read `topic` from the beginning until `until(records)` holds or the timeout passes."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(records):
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(
                    r for r in partition_records if key_filter is None or key_filter(r.key)
                )
    finally:
        await consumer.stop()
    return records


async def published_versions(
    bootstrap: str, topic: str, key: uuid.UUID, count: int, *, timeout: float
) -> list[int]:
    """The `version` of each of the first `count` events published on `topic` under `key`."""
    records = await read_topic(
        bootstrap,
        topic,
        until=lambda rs: len(rs) >= count,
        key_filter=lambda k: k == str(key).encode(),
        timeout=timeout,
    )
    return [json.loads(r.value)["version"] for r in records]


async def produce_raw(
    bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    """Write (key, value, headers) records in order and wait for the broker's acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value, headers in messages:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def wait_for(
    condition: Callable[[], object], *, timeout: float = 30.0, interval: float = 0.1
) -> None:
    """Await until `condition()` (sync or async) is truthy; raise AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


async def committed_offsets(bootstrap: str, group: str, topic: str) -> list[int]:
    """`group`'s committed offset on each of `topic`'s partitions (0: none committed)."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await reader.start()
    try:
        # More partitions than the test broker gives a topic; absent ones answer None.
        offsets = [await reader.committed(TopicPartition(topic, p)) for p in range(12)]
    finally:
        await reader.stop()
    return [offset or 0 for offset in offsets]
