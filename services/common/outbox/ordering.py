"""Per-key order when a key's rows go out together.

A round may hold several rows of one key (a claim takes a key's consecutive unsent rows;
a commit hands over every row it wrote). The producer keeps the order records are handed
over in per partition, but not what happens after a failure: aiokafka sends one request
per partition at a time, so if a record's request fails for good (its retries ran out)
the next request of that partition, holding the key's later record, may still succeed,
and the later event would be on the topic before the earlier one. So a round goes out in
waves: the first row of every key, then, once all of those were acknowledged, the second
row of every key whose first one was, and so on. A key whose row failed sends nothing
more this round (its later rows fail with `HeldBehind` and wait for their turn). A round
with one row per key, the usual case, is one wave: one produce round, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = ["HeldBehind", "Keyed", "KeysTogetherPublisher", "in_waves", "one_key_at_a_time"]


class Keyed(Protocol):
    """What ordering needs of a row: its key."""

    @property
    def key(self) -> str: ...


R = TypeVar("R", bound="Keyed")


@runtime_checkable
class KeysTogetherPublisher(Protocol):
    """Publishes a batch with each partition's rows in ONE record batch, which the broker
    appends whole or not at all: a key's later row can never land without its earlier
    one, so no waves are needed. Per row, None (acknowledged) or the error."""

    async def publish_keys_together(
        self, rows: Sequence[Any]
    ) -> Sequence[BaseException | None]: ...


class HeldBehind(Exception):
    """Not sent: an earlier row of the same key failed in this round."""


def _waves(rows: Sequence[R]) -> list[list[int]]:
    """Positions of `rows` by wave: wave n holds the n-th row of each key, in the order given."""
    seen: dict[str, int] = {}
    waves: list[list[int]] = []
    for index, row in enumerate(rows):
        n = seen.get(row.key, 0)
        seen[row.key] = n + 1
        if n == len(waves):
            waves.append([])
        waves[n].append(index)
    return waves


async def in_waves(
    rows: Sequence[R],
    publish_batch: Callable[[Sequence[R]], Awaitable[Sequence[object]]],
) -> list[object]:
    """Publish `rows` (in id order) wave by wave; per row, what `publish_batch` returned
    for it (an exception if it failed) or `HeldBehind` if an earlier row of its key failed."""
    results: list[object] = [None] * len(rows)
    failed_keys: set[str] = set()
    for wave in _waves(rows):
        sending = [i for i in wave if rows[i].key not in failed_keys]
        for i in wave:
            if rows[i].key in failed_keys:
                results[i] = HeldBehind()
        if not sending:
            continue
        outcomes = await publish_batch([rows[i] for i in sending])
        for i, outcome in zip(sending, outcomes, strict=True):
            results[i] = outcome
            if isinstance(outcome, BaseException):
                failed_keys.add(rows[i].key)
    return results


async def one_key_at_a_time(
    rows: Sequence[R], publish: Callable[[R], Awaitable[None]]
) -> list[BaseException | None]:
    """Publish with a per-row function: keys concurrently, each key's rows one after another
    (the next only once the previous one was acknowledged); per row None or its error."""
    by_key: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_key.setdefault(row.key, []).append(index)
    results: list[BaseException | None] = [None] * len(rows)

    async def send_key(indexes: list[int]) -> None:
        for position, i in enumerate(indexes):
            try:
                await publish(rows[i])
            except Exception as exc:
                results[i] = exc
                for later in indexes[position + 1 :]:
                    results[later] = HeldBehind()
                return

    await asyncio.gather(*(send_key(indexes) for indexes in by_key.values()))
    return results
