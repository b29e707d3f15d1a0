"""Retention of the messaging tables: sent outbox rows and old inbox claims deleted.

Every service keeps an outbox (events committed with their change) and an inbox (the ids
of the messages it applied). The relay deletes an outbox row once Kafka has it
(services/common/outbox/relay.py); rows marked sent (`sent_at`) by a release before that
change are left to this pruning, which is the only way they go. A claim only has to
outlive any redelivery of its message; left alone, claims (and those old sent rows) would
stay for as long as the system runs. So each service process deletes, once an interval,
the rows marked sent longer ago than the outbox's retention and the claims older than the
inbox's, in bounded batches: each batch is its own short transaction, so a relay or a
consumer never waits long behind it.

Several processes of one service may prune at once: on PostgreSQL each batch skips the
rows another batch holds, and a row is deleted once, whoever gets it. Unsent outbox rows
are never touched, however old: they are events still owed to Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.logging import get_logger
from services.common.messaging import inbox_messages, outbox_messages

__all__ = ["MessagingRetention", "Pruned"]

log = get_logger(__name__)

# Rows a batch deletes: small enough that a batch holds its locks for milliseconds, large
# enough that a day of notices goes in a few hundred statements.
PRUNE_BATCH = 1_000


@dataclass(frozen=True)
class Pruned:
    """What one pruning deleted."""

    outbox: int
    inbox: int


def _sent_before(cutoff: datetime, limit: int) -> sa.Delete:
    """Sent outbox rows older than `cutoff`, at most `limit` of them (oldest ids first)."""
    c = outbox_messages.c
    batch = (
        sa.select(c.id)
        .where(c.sent_at.is_not(None), c.sent_at < cutoff)
        .order_by(c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer anyway
        .scalar_subquery()
    )
    return sa.delete(outbox_messages).where(c.id.in_(batch))


def _claimed_before(cutoff: datetime, limit: int) -> sa.Delete:
    """Inbox claims recorded before `cutoff`, at most `limit` of them."""
    c = inbox_messages.c
    batch = (
        sa.select(c.consumer, c.message_id)
        .where(c.processed_at < cutoff)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return sa.delete(inbox_messages).where(sa.tuple_(c.consumer, c.message_id).in_(batch))


class MessagingRetention:
    """Deletes a service's sent outbox rows and inbox claims once they are old enough."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        outbox_retention_s: float,
        inbox_retention_s: float,
        interval_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        batch: int = PRUNE_BATCH,
    ) -> None:
        self._sessions = sessions
        self._outbox_retention = timedelta(seconds=outbox_retention_s)
        self._inbox_retention = timedelta(seconds=inbox_retention_s)
        self._interval_s = interval_s
        self._clock = clock
        self._batch = batch

    async def prune(self) -> Pruned:
        """Delete what is past its retention now, batch after batch until none is left."""
        now = self._clock()
        outbox = await self._drain(lambda: _sent_before(now - self._outbox_retention, self._batch))
        inbox = await self._drain(lambda: _claimed_before(now - self._inbox_retention, self._batch))
        return Pruned(outbox=outbox, inbox=inbox)

    async def _drain(self, statement: Callable[[], sa.Delete]) -> int:
        deleted = 0
        while True:
            async with self._sessions() as session, session.begin():
                result = await session.execute(statement())
            count = int(result.rowcount or 0)  # type: ignore[attr-defined]
            deleted += count
            if count < self._batch:
                return deleted

    async def run(self, stop: asyncio.Event) -> None:
        """Prune at once, then once an interval, until `stop` is set (a background worker).

        A failed pruning (the database away) is logged and tried again at the next
        interval: nothing is lost by waiting, the rows only stay longer.
        """
        while not stop.is_set():
            try:
                pruned = await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("messaging.prune_failed", error_type=type(exc).__name__)
            else:
                if pruned.outbox or pruned.inbox:
                    log.info("messaging.pruned", outbox=pruned.outbox, inbox=pruned.inbox)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
