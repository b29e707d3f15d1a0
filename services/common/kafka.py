"""Kafka for Aviso services: the broker and the outbox publisher (consumers: consuming.py).

- Producer: `acks=all` and idempotence on, so an acknowledged event is on every
  in-sync replica and a producer retry cannot write it twice.
- Consumers (`EventConsumer`, re-exported here): idempotent through the inbox, applied
  in batches, retried, dead-lettered; see services/common/consuming.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from faststream.kafka import KafkaBroker

from services.common.consuming import EventConsumer, Handler, database_unreachable
from services.common.logging import faststream_logger
from services.common.outbox import OutboxRow
from services.common.outbox.ordering import HeldBehind, in_waves, one_key_at_a_time
from services.common.produce_now import append_batches, write_now
from services.common.settings import CommonSettings

__all__ = [
    "EventConsumer",
    "Handler",
    "KafkaOutboxPublisher",
    "database_unreachable",
    "make_broker",
    "outbox_publisher",
    "ping_broker",
]


def make_broker(settings: CommonSettings, *, service: str) -> KafkaBroker:
    """The service's one broker: durable producer, structured logs, graceful stop."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"aviso-{service}",
        acks="all",
        enable_idempotence=True,
        # While the cluster is away the client retries every backoff and logs each try;
        # half a second keeps an outage from flooding the logs at no cost to recovery.
        retry_backoff_ms=500,
        graceful_timeout=settings.shutdown_grace_s,
        logger=faststream_logger(),
        # FastStream's own "Received"/"Processed" line per message at DEBUG: two log
        # records per message and consumer cost more than the handler's own work; our
        # consumer logs what matters (retries, duplicates, dead letters) itself.
        log_level=logging.DEBUG,
        description=f"Aviso {service}",
    )


class KafkaOutboxPublisher:
    """The relay's publisher: a batch in one produce round, each row acknowledged (acks=all).

    `publish_batch` hands every record to the producer first and then awaits all the
    acknowledgements, so a batch costs one produce request per partition leader instead
    of a publish call per row. Records of one partition keep the order they were handed
    over in (idempotent producer), and the relay hands them over in id order. A key whose
    record the producer refuses at hand-over hands over none of its later rows; before
    the producer is connected a key's rows go one after another. (Whether a key's later
    record may follow one that failed after hand-over is the relay's concern: it sends a
    key's rows in waves, `services.common.outbox.ordering`.)
    """

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def __call__(self, row: OutboxRow) -> None:
        """Send one row through the broker and wait for its acknowledgement."""
        await self._broker.publish(
            row.payload.encode("utf-8"),
            topic=row.topic,
            key=row.key.encode("utf-8"),
            headers=row.headers,
            correlation_id=row.headers.get("ce_correlationid"),
        )

    async def publish_batch(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        """Send every row, then await every acknowledgement; per row None or its error."""
        producer = self._producer()
        if producer is None:  # not connected yet, or a test broker: one publish per row
            return await one_key_at_a_time(rows, self)
        pending: list[asyncio.Future[Any] | BaseException] = []
        refused: set[str] = set()
        for row in rows:
            if row.key in refused:
                pending.append(HeldBehind())
                continue
            try:
                pending.append(
                    await producer.send(
                        row.topic,
                        value=row.payload.encode("utf-8"),
                        key=row.key.encode("utf-8"),
                        headers=_record_headers(row),
                    )
                )
            except Exception as exc:  # this row and its key's later ones (e.g. buffer full)
                pending.append(exc)
                refused.add(row.key)
        acks = await asyncio.gather(
            *(p for p in pending if not isinstance(p, BaseException)), return_exceptions=True
        )
        outcomes = iter(acks)
        return [
            p if isinstance(p, BaseException) else _error_or_none(next(outcomes)) for p in pending
        ]

    async def publish_keys_together(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        """Send every row, a partition's rows (so a key's) as ONE record batch; per row None
        or its error.

        A record batch is appended to the partition whole or not at all, so a key's later
        rows cannot land without its earlier ones: the relay need not send them in waves
        (one produce round per wave). Rows that do not fit one batch per partition, or a
        producer not connected yet, go in waves as before.
        """
        producer = self._producer()
        if producer is None:
            return await one_key_at_a_time(rows, self)
        batches = await _partition_batches(producer, rows)
        if batches is None:
            return [_error_or_none(r) for r in await in_waves(rows, self.publish_batch)]
        sent: list[tuple[list[int], asyncio.Future[Any] | BaseException]] = []
        for (topic, partition), (builder, indexes) in batches.items():
            try:
                future = await producer.send_batch(builder, topic, partition=partition)
                sent.append((indexes, future))
            except Exception as exc:  # refused at hand-over (e.g. buffer full): none of it
                sent.append((indexes, exc))
        write_now(producer)  # the request now, not after the sender task's turns
        return await _outcomes(len(rows), sent)

    def start_keys_together(
        self, rows: Sequence[OutboxRow]
    ) -> Awaitable[list[BaseException | None]] | None:
        """`publish_keys_together` begun in the caller's turn: the produce request written
        before this returns; what to await for the outcomes, or None (nothing sent: the
        producer not ready, metadata to fetch, a batch of a partition still queued)."""
        producer = self._producer()
        if producer is None:
            return None
        cluster = producer.client.cluster
        if any(not cluster.partitions_for_topic(topic) for topic in {row.topic for row in rows}):
            return None  # the metadata to fetch first: the round's `publish_keys_together`
        batches = _partition_batches_now(producer, rows)
        if batches is None:
            return None
        futures = append_batches(
            producer,
            [(topic, partition, builder) for (topic, partition), (builder, _) in batches.items()],
        )
        if futures is None:
            return None
        write_now(producer)
        sent = [
            (indexes, future)
            for (_, indexes), future in zip(batches.values(), futures, strict=True)
        ]
        return _outcomes(len(rows), sent)

    def _producer(self) -> Any:
        """The broker's aiokafka producer once connected (so both share one connection)."""
        state = getattr(self._broker.config.producer, "_producer", None)
        producer = getattr(state, "producer", None)
        return producer if hasattr(producer, "send") else None


async def _partition_batches(
    producer: Any, rows: Sequence[OutboxRow]
) -> dict[tuple[str, int], tuple[Any, list[int]]] | None:
    """One record batch per (topic, partition) holding its rows in order, and their
    positions; None if a partition's rows do not fit one batch."""
    for topic in {row.topic for row in rows}:
        await producer.partitions_for(topic)  # the metadata `_partition` reads, as in `send`
    return _partition_batches_now(producer, rows)


def _partition_batches_now(
    producer: Any, rows: Sequence[OutboxRow]
) -> dict[tuple[str, int], tuple[Any, list[int]]] | None:
    """`_partition_batches` with the metadata the producer has already."""
    batches: dict[tuple[str, int], tuple[Any, list[int]]] = {}
    for index, row in enumerate(rows):
        key = row.key.encode("utf-8")
        # The partition `send` would choose (the producer's partitioner over the topic's
        # metadata), so a key's records land where they always did (aiokafka's own
        # `_partition`, as `send` calls it).
        partition = producer._partition(row.topic, None, key, None, key, None)
        builder, indexes = batches.setdefault((row.topic, partition), (producer.create_batch(), []))
        appended = builder.append(
            timestamp=None,
            key=key,
            value=row.payload.encode("utf-8"),
            headers=_record_headers(row),
        )
        if appended is None:  # full: more than one batch would split a key's rows
            return None
        indexes.append(index)
    return batches


async def _outcomes(
    count: int, sent: Sequence[tuple[list[int], asyncio.Future[Any] | BaseException]]
) -> list[BaseException | None]:
    """Per row None or its error, once every batch in `sent` (rows' positions, delivery
    future or refusal) is acknowledged."""
    acks = await asyncio.gather(
        *(p for _, p in sent if not isinstance(p, BaseException)), return_exceptions=True
    )
    outcomes = iter(acks)
    results: list[BaseException | None] = [None] * count
    for indexes, pending in sent:
        outcome = pending if isinstance(pending, BaseException) else next(outcomes)
        for index in indexes:
            results[index] = _error_or_none(outcome)
    return results


def _record_headers(row: OutboxRow) -> list[tuple[str, bytes]]:
    # The same headers as a broker.publish of the row: content type, correlation id, the
    # CloudEvents headers; so consumers see no difference between the two paths.
    headers = {"content-type": "", **row.headers}
    correlation_id = row.headers.get("ce_correlationid")
    if correlation_id:
        headers = {"content-type": "", "correlation_id": correlation_id, **row.headers}
    return [(name, (value or "").encode()) for name, value in headers.items()]


def _error_or_none(result: object) -> BaseException | None:
    return result if isinstance(result, BaseException) else None


def outbox_publisher(broker: KafkaBroker) -> KafkaOutboxPublisher:
    """The relay's publisher over the service's broker (batches in one produce round)."""
    return KafkaOutboxPublisher(broker)


async def ping_broker(broker: KafkaBroker, *, timeout: float = 3.0) -> bool:
    """True when the cluster answers a metadata request within `timeout` seconds."""
    try:
        return bool(await broker.ping(timeout=timeout))
    except Exception:  # a readiness probe reports, it does not raise
        return False
