"""Reading and replaying the dead-letter topic (`aviso dlq list`, `aviso dlq replay`, and
router's ops API through `KafkaDeadLetters`).

A dead letter keeps the original record byte for byte (value, key, headers), so a
replay republishes exactly what failed to the topic it came from. The message id
(`ce_id`) is unchanged: consumer groups that already applied it skip it through their
inbox, and the group that failed applies it now, once the cause is fixed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.dlq import DeadLettered
from schemas.topics import DLQ

__all__ = [
    "DeadLetter",
    "DeadLetters",
    "KafkaDeadLetters",
    "Replayed",
    "read_dead_letters",
    "replay",
]


@dataclass(frozen=True)
class DeadLetter:
    """One entry of the DLQ with where it sits on the DLQ topic."""

    partition: int
    offset: int
    letter: DeadLettered


async def read_dead_letters(bootstrap: str, *, timeout_s: float = 10.0) -> list[DeadLetter]:
    """Every dead letter currently on the DLQ topic, oldest first per partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        # Without a subscription the consumer keeps no metadata of its own; ask for it.
        metadata = await consumer._client.fetch_all_metadata()
        partitions = metadata.partitions_for_topic(DLQ) or set()
        assigned = [TopicPartition(DLQ, p) for p in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        end = await consumer.end_offsets(assigned)
        letters: list[DeadLetter] = []
        remaining = {tp for tp in assigned if end[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=int(timeout_s * 1000))
            if not batch:
                break
            for tp, records in batch.items():
                for record in records:
                    try:
                        letter = DeadLettered.model_validate(json.loads(record.value or b"{}"))
                    except ValueError:
                        continue  # not ours; the DLQ is append-only, skip what we cannot read
                    letters.append(DeadLetter(record.partition, record.offset, letter))
                    if record.offset + 1 >= end[tp]:
                        remaining.discard(tp)
        return letters
    finally:
        await consumer.stop()


async def replay(bootstrap: str, letters: Sequence[DeadLettered]) -> int:
    """Republish each letter's original record to its original topic; returns the count."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for letter in letters:
            headers = [(name, value.encode("utf-8")) for name, value in letter.original_headers]
            headers.append(("aviso_replayed_from", str(letter.dead_letter_id).encode()))
            await producer.send_and_wait(
                letter.original_topic,
                letter.original_value_bytes(),
                key=letter.original_key_bytes(),
                headers=headers,
            )
        return len(letters)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Replayed:
    """What a replay did: the letters republished, and the ids that are not on the DLQ."""

    replayed: tuple[uuid.UUID, ...]
    missing: tuple[uuid.UUID, ...]


class DeadLetters(Protocol):
    """The DLQ as an ops API sees it (tests pass an in-memory one)."""

    async def list(self) -> list[DeadLetter]:
        """Every dead letter on the topic now."""
        ...

    async def replay(self, ids: Collection[uuid.UUID]) -> Replayed:
        """Republish the letters with these ids; nothing when one of them is missing."""
        ...


@dataclass(frozen=True)
class KafkaDeadLetters:
    """The dead-letter topic of the cluster at `bootstrap`."""

    bootstrap: str
    timeout_s: float = 10.0

    async def list(self) -> list[DeadLetter]:
        """Every dead letter on the topic now."""
        return await read_dead_letters(self.bootstrap, timeout_s=self.timeout_s)

    async def replay(self, ids: Collection[uuid.UUID]) -> Replayed:
        """Republish the letters with these ids; nothing when one of them is missing
        (all or none, so an operator's second try does not repeat half of the first)."""
        wanted = set(ids)
        found = [e.letter for e in await self.list() if e.letter.dead_letter_id in wanted]
        # A letter replayed before and dead-lettered again is on the topic twice: once is enough.
        unique = list({letter.dead_letter_id: letter for letter in found}.values())
        missing = tuple(sorted(wanted - {letter.dead_letter_id for letter in unique}, key=str))
        if missing:
            return Replayed((), missing)
        await replay(self.bootstrap, unique)
        return Replayed(tuple(letter.dead_letter_id for letter in unique), ())
