"""What the relay hands its publisher, and what it makes of the answers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.outbox.headers import full_headers
from services.common.outbox.ordering import one_key_at_a_time
from services.common.outbox.statements import RelayStatements
from services.common.outbox.writing import OutboxRow, PublishFn

__all__ = ["BatchPublisher", "claim_rows", "one_by_one", "relay_row", "split_results"]


@runtime_checkable
class BatchPublisher(Protocol):
    """Publishes a batch in one produce round; per row, None (acknowledged) or the error."""

    async def publish_batch(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]: ...


def one_by_one(publish: PublishFn) -> Callable[[Sequence[OutboxRow]], Awaitable[list[Any]]]:
    """A per-row publish function as a batch one: keys concurrently, a key's rows in turn."""

    async def publish_batch(rows: Sequence[OutboxRow]) -> list[Any]:
        return await one_key_at_a_time(rows, publish)

    return publish_batch


def relay_row(r: Mapping[Any, Any]) -> OutboxRow:
    """A row as the publisher takes it, from a claim's result or a handed-over row: its
    headers whole again (headers.py)."""
    stored = r["headers"]
    message_id, event_type, key = r["message_id"], r["event_type"], r["key"]
    return OutboxRow(
        id=r["id"],
        message_id=message_id,
        topic=r["topic"],
        key=key,
        event_type=event_type,
        headers=full_headers(
            stored if isinstance(stored, dict) else json.loads(stored),
            message_id=message_id,
            event_type=event_type,
            key=key,
        ),
        payload=r["payload"],
    )


def split_results(
    rows: Sequence[OutboxRow], results: Sequence[object]
) -> tuple[list[int], list[tuple[OutboxRow, BaseException]]]:
    """Ids of the rows the broker acknowledged, and the rows that failed with their error."""
    sent: list[int] = []
    failed: list[tuple[OutboxRow, BaseException]] = []
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, BaseException):
            failed.append((row, result))
        else:
            sent.append(row.id)
    return sent, failed


async def claim_rows(
    sessions: async_sessionmaker[AsyncSession], statements: RelayStatements
) -> tuple[list[OutboxRow], bool]:
    """A claim round's rows in id order, and whether a row of a key waits behind its last."""
    async with sessions() as session, session.begin():
        result = await session.execute(statements.claim, statements.claim_values())
        claimed: list[OutboxRow] = []
        # Per key, whether a row waits behind the last one claimed (the claim takes a
        # key's consecutive rows, so an earlier row's successor may be claimed too).
        last_of_key: dict[str, tuple[int, bool]] = {}
        for r in result:
            if r.key not in last_of_key or last_of_key[r.key][0] < r.id:
                last_of_key[r.key] = (r.id, bool(r.has_successor))
            claimed.append(relay_row(r._mapping))
    waiting = any(waits for _id, waits in last_of_key.values())
    return sorted(claimed, key=lambda row: row.id), waiting
