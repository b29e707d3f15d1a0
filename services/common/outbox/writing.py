"""The writing side of the outbox: rows added in the caller's transaction.

A commit that enqueued something wakes the relays of this process at once (an
in-process signal), and on PostgreSQL a `NOTIFY` sent in the same transaction wakes
relays in other processes; polling is only the fallback. The NOTIFY carries this
process's token, so its own relays, woken already, ignore it (a second wake-up would
start a second, empty round per commit).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from schemas.base import EventData
from services.common.bulk import insert_rows
from services.common.cloudevents import OutgoingEvent, new_event
from services.common.logging import get_logger
from services.common.messaging import outbox_messages

__all__ = [
    "OutboxRow",
    "PublishFn",
    "enqueue",
    "enqueue_all",
    "enqueue_outgoing",
    "mark_enqueued",
    "notify_relays",
    "outbox_row",
    "pending_count",
    "watch_commits",
]

log = get_logger(__name__)

_DIRTY = "aviso_outbox_dirty"
_NOTIFY_CHANNEL = "aviso_outbox"
# The payload of this process's NOTIFYs: random, so it says nothing but "not yours".
_PROCESS_TOKEN = uuid.uuid4().hex

# Relays of this process, woken after any commit that enqueued a row.
_wakers: set[asyncio.Event] = set()
# Others that want to hear of the same commits (and of other processes' NOTIFYs that a
# relay of this process receives): see `watch_commits`.
_watchers: set[asyncio.Event] = set()


@event.listens_for(Session, "after_commit")
def _wake_relays_after_commit(session: Session) -> None:
    if session.info.pop(_DIRTY, False):
        for waker in _wakers:
            waker.set()
        for watcher in _watchers:
            watcher.set()


def watch_commits(watcher: asyncio.Event) -> Callable[[], None]:
    """Set `watcher` after every commit that enqueued a row, in this process or (on
    PostgreSQL, while a relay of this process listens) another process of the same
    component; returns the function that stops it.

    A state change worth publishing comes with an event, so a background worker can sleep
    through quiet times and still hear of new work at once (the escalation worker learns
    of new timers this way instead of polling for them twice a second).
    """
    _watchers.add(watcher)
    return lambda: _watchers.discard(watcher)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_DIRTY, None)


@dataclass(frozen=True)
class OutboxRow:
    """A claimed row, as handed to the publish function."""

    id: int
    message_id: str
    topic: str
    key: str
    event_type: str
    headers: dict[str, str]
    payload: str


PublishFn = Callable[[OutboxRow], Awaitable[None]]


async def enqueue(
    session: AsyncSession,
    event_data: EventData,
    *,
    source: str,
    correlation_id: str | None = None,
    alongside: Sequence[sa.Insert | sa.Update] = (),
) -> OutgoingEvent:
    """Add `event_data` to the outbox in the caller's transaction; returns the envelope.

    Topic and key come from the event model (its topic and aggregate id), so one
    aggregate always lands on one partition in order. `alongside`: the caller's other
    writes of the change (INSERTs and UPDATEs that read none of each other's rows), sent
    in the same statement on PostgreSQL (data-modifying CTEs: one round trip for the
    whole change); elsewhere they run first, in order.
    """
    outgoing = new_event(event_data, source=source, correlation_id=correlation_id)
    await _insert(session, [outbox_row(outgoing, datetime.now(UTC))], alongside=alongside)
    return outgoing


async def enqueue_outgoing(session: AsyncSession, outgoing: OutgoingEvent) -> None:
    """Add an already-built envelope to the outbox (used by DLQ replay)."""
    await _insert(session, [outbox_row(outgoing, datetime.now(UTC))], alongside=())


async def enqueue_all(
    session: AsyncSession,
    events: Sequence[tuple[EventData, str | None]],
    *,
    source: str,
) -> list[OutgoingEvent]:
    """`enqueue` for many (event, correlation id) pairs: one statement and one wake-up.

    Rows get ids in the order given, so events of one key keep their order. For batches
    (a burst of escalations), where a statement per event would dominate the cost.
    """
    outgoing = [new_event(data, source=source, correlation_id=cid) for data, cid in events]
    if outgoing:
        now = datetime.now(UTC)
        await _insert(session, [outbox_row(o, now) for o in outgoing], alongside=())
    return outgoing


def outbox_row(outgoing: OutgoingEvent, now: datetime) -> dict[str, object]:
    return {
        "message_id": outgoing.message_id,
        "topic": outgoing.topic,
        "key": outgoing.key,
        "event_type": outgoing.event_type,
        "headers": outgoing.headers,
        "payload": outgoing.payload,
        "created_at": now,
        "attempts": 0,
    }


# PostgreSQL: the INSERT and its NOTIFY as one statement, sent only on commit. A
# data-modifying CTE runs whole whatever reads it; LIMIT 1: one NOTIFY.
_WITH_NOTIFY = (
    "WITH inserted AS ({insert} RETURNING 1) "  # noqa: S608 - constant; rows are bound
    f"SELECT pg_notify('{_NOTIFY_CHANNEL}_' || current_schema(), '{_PROCESS_TOKEN}') "
    "FROM (SELECT 1 FROM inserted LIMIT 1) AS one"
)


async def _insert(
    session: AsyncSession,
    rows: list[dict[str, object]],
    *,
    alongside: Sequence[sa.Insert | sa.Update],
) -> None:
    """The rows in one INSERT (ids in the order given) with the NOTIFY (PostgreSQL).

    `alongside` on PostgreSQL: the caller's writes and the outbox row as one statement
    (data-modifying CTEs: one round trip for the whole change); elsewhere they run first.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres and alongside:
        await _insert_alongside(session, rows, alongside)
    else:
        for write in alongside:
            await session.execute(write)
        await insert_rows(session, outbox_messages, rows, wrap=_WITH_NOTIFY)
    mark_enqueued(session)


async def _insert_alongside(
    session: AsyncSession,
    rows: list[dict[str, object]],
    alongside: Sequence[sa.Insert | sa.Update],
) -> None:
    notify = notify_relays()
    insert = sa.insert(outbox_messages).values(rows[0] if len(rows) == 1 else rows)
    inserted = insert.returning(sa.literal(1).label("one")).cte("inserted")
    statement = sa.select(notify).select_from(sa.select(inserted).limit(1).subquery())
    statement = statement.add_cte(*(write.cte(f"write_{n}") for n, write in enumerate(alongside)))
    await session.execute(statement)


def notify_relays() -> sa.ColumnElement[Any]:
    """The NOTIFY `enqueue` sends with its rows (PostgreSQL), for a statement that writes
    outbox rows itself: relays of other processes wake; this process's ignore it."""
    channel = sa.literal(_NOTIFY_CHANNEL + "_") + sa.func.current_schema()
    return sa.func.pg_notify(channel, sa.literal(_PROCESS_TOKEN))


def mark_enqueued(session: AsyncSession) -> None:
    """Wake this process's relays when `session` commits: it wrote outbox rows."""
    session.sync_session.info[_DIRTY] = True


async def pending_count(session: AsyncSession) -> int:
    """How many rows wait to be published (for metrics and readiness)."""
    result = await session.execute(
        sa.select(sa.func.count())
        .select_from(outbox_messages)
        .where(outbox_messages.c.sent_at.is_(None))
    )
    return int(result.scalar_one())
