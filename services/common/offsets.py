"""Consumer offsets committed in batches, where the inbox makes a redelivery harmless.

Every consumer records a message's id in the same transaction as its effect (inbox.py),
so a message delivered again is applied once. Committing its offset right after each
message therefore protects nothing: it costs a round trip to the group coordinator (and
a write to `__consumer_offsets`) per message. `OffsetCommitter` commits the offsets of
processed messages every `every` messages or `interval_s` seconds after the first
uncommitted one, whichever comes first; before a rebalance takes partitions away
(`on_partitions_revoked`); and after every message once the service is stopping
(`finish`).

Only processed offsets are committed, never the position of a message still being
handled, so a crash loses nothing: whoever takes a partition over reads again from the
last commit, at most `every` messages or `interval_s` worth, and the inbox turns those
into no-ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from services.common.logging import get_logger

__all__ = ["CommitBeforeRevoke", "OffsetCommitter"]

log = get_logger(__name__)


class OffsetCommitter:
    """Offsets of processed messages, per consumer, committed in batches."""

    def __init__(self, *, every: int, interval_s: float) -> None:
        self._every = max(1, every)
        self._interval_s = interval_s
        self._pending: dict[AIOKafkaConsumer, dict[TopicPartition, int]] = {}
        self._count = 0
        self._final = False
        self._timer: asyncio.Task[None] | None = None
        self.commits = 0

    @property
    def pending(self) -> int:
        """Processed messages whose offsets are not committed yet."""
        return self._count

    async def processed(self, consumer: object, record: Any) -> None:
        """`record` is done with (applied, skipped or dead-lettered): commit in due course."""
        await self.processed_all(consumer, (record,))

    async def processed_all(self, consumer: object, records: Iterable[Any]) -> None:
        """Every one of `records` is done with: commit in due course (one check for all)."""
        if not isinstance(consumer, AIOKafkaConsumer):
            return  # FastStream's test broker: there is no group to commit to
        offsets = self._pending.setdefault(consumer, {})
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
            self._count += 1
        if self._final or self._count >= self._every:
            await self.flush()
        elif self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._flush_later(), name="offsets-flush")

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._interval_s)
        await self.flush()

    async def flush(self) -> None:
        """Commit every pending offset now."""
        taken, self._pending, self._count = self._pending, {}, 0
        for consumer, processed in taken.items():
            # Only partitions still assigned: a batch applied while a rebalance took some
            # away must not fail the commit of the others (aiokafka refuses the whole
            # commit then). The new owner reads the others' messages again; the inbox
            # makes them no-ops.
            assigned = consumer.assignment()
            offsets = {tp: offset for tp, offset in processed.items() if tp in assigned}
            if not offsets:
                continue
            started = time.monotonic()
            try:
                await consumer.commit(offsets)
            except Exception as exc:
                # A rebalance took the partitions, or the coordinator is away: the new
                # owner reads those messages again and the inbox makes them no-ops.
                log.warning(
                    "consumer.offsets_commit_failed",
                    partitions=len(offsets),
                    error_type=type(exc).__name__,
                )
                continue
            self.commits += 1
            log.debug(
                "consumer.offsets_committed",
                partitions=len(offsets),
                took_ms=round((time.monotonic() - started) * 1000, 1),
            )

    async def finish(self) -> None:
        """The service is stopping: commit what is pending, then after every message."""
        self._final = True
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        await self.flush()


class CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits the processed offsets before a rebalance hands partitions to another member."""

    def __init__(self, committer: OffsetCommitter) -> None:
        self._committer = committer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            await self._committer.flush()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
