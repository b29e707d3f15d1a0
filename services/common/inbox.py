"""Idempotent consumers: a processed message id is recorded in the effect's transaction.

Kafka delivers at least once (a relay may publish twice, a consumer may be
rebalanced before committing its offset), so every consumer claims the message id
first, in the same transaction as its effect. A second delivery finds the claim and
does nothing; if the transaction rolls back, the claim goes with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.bulk import column_arrays, unnest_insert
from services.common.direct import DirectStatement, is_postgres_session
from services.common.messaging import inbox_messages

__all__ = ["Claim", "claim_message", "claim_messages", "was_processed"]


async def claim_message(
    session: AsyncSession, *, consumer: str, message_id: str, topic: str
) -> bool:
    """Record `message_id` as processed by `consumer`; False when it already was.

    On PostgreSQL a concurrent claim of the same id waits for the other transaction
    and then reports the duplicate, so two instances never both apply the effect.
    """
    values = {
        "consumer": consumer,
        "message_id": message_id,
        "topic": topic,
        "processed_at": datetime.now(UTC),
    }
    if is_postgres_session(session):
        # Straight to asyncpg (direct.py): every consumed message runs it.
        return await _CLAIM_ONE_PG.fetchrow(session, values) is not None
    result = await session.execute(_claim_one(session.get_bind().dialect.name), values)
    return result.first() is not None


@cache
def _claim_one(dialect: str) -> sa.Insert:
    """`claim_message`'s statement, built once per dialect: every consumed message runs it,
    and a statement built per call costs its construction and cache key each time."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = ("consumer", "message_id", "topic", "processed_at")
    return (
        insert(inbox_messages)
        .values({name: sa.bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=["consumer", "message_id"])
        .returning(inbox_messages.c.message_id)
    )


_CLAIM_ONE_PG = DirectStatement(lambda: _claim_one("postgresql"))

# PostgreSQL: a batch's claims as one array per column (bulk.py), so one prepared statement
# serves every batch size (a VALUES list would be a new statement, and a new plan, per
# size). The rows go in the order given, which the caller sorts.
_CLAIM_COLUMNS = ("consumer", "message_id", "topic", "processed_at")
_CLAIM_MANY_PG = DirectStatement(
    lambda: unnest_insert(
        inbox_messages, _CLAIM_COLUMNS, True, "{insert} RETURNING consumer, message_id"
    )
)


class Claim(NamedTuple):
    """A message id to record as processed by a consumer (its inbox name)."""

    consumer: str
    message_id: str
    topic: str
    # When its consumer began applying the message (the row's processed_at); None: when
    # the row is written.
    at: datetime | None = None

    def row(self) -> dict[str, object]:
        """The inbox row recording it, by column name."""
        at = self.at if self.at is not None else datetime.now(UTC)
        return {
            "consumer": self.consumer,
            "message_id": self.message_id,
            "topic": self.topic,
            "processed_at": at,
        }


async def claim_messages(session: AsyncSession, claims: Sequence[Claim]) -> set[tuple[str, str]]:
    """Record every claim in one statement; the (consumer, message id) pairs that were new.

    A pair claimed twice in `claims` is recorded once and reported new once: the caller
    applies its first copy and skips the others. Rows go in sorted by key, so two
    transactions claiming overlapping sets wait for each other instead of deadlocking.
    """
    unique = sorted({(c.consumer, c.message_id): c for c in claims}.values())
    if not unique:
        return set()
    if is_postgres_session(session):
        now = datetime.now(UTC)
        rows = [c._replace(at=now).row() for c in unique]
        found = await _CLAIM_MANY_PG.fetch(session, column_arrays(_CLAIM_COLUMNS, rows))
        return {(row["consumer"], row["message_id"]) for row in found}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = datetime.now(UTC)
    statement = (
        insert(inbox_messages)
        .values(
            [
                {
                    "consumer": c.consumer,
                    "message_id": c.message_id,
                    "topic": c.topic,
                    "processed_at": now,
                }
                for c in unique
            ]
        )
        .on_conflict_do_nothing(index_elements=["consumer", "message_id"])
        .returning(inbox_messages.c.consumer, inbox_messages.c.message_id)
    )
    result = await session.execute(statement)
    return {(row.consumer, row.message_id) for row in result}


async def was_processed(session: AsyncSession, *, consumer: str, message_id: str) -> bool:
    """True when `consumer` already processed `message_id`."""
    result = await session.execute(
        sa.select(inbox_messages.c.message_id).where(
            inbox_messages.c.consumer == consumer, inbox_messages.c.message_id == message_id
        )
    )
    return result.first() is not None
