"""The writing side of the outbox: rows added in the caller's transaction.

A commit that enqueued something wakes the relays of this process at once (an
in-process signal), and on PostgreSQL a `NOTIFY` sent in the same transaction wakes
relays in other processes; polling is only the fallback. The NOTIFY carries this
process's token, so its own relays, woken already, ignore it (a second wake-up would
start a second, empty round per commit). On PostgreSQL the rows are leased to this
process's relay as they are inserted and handed to it at commit (handoff.py): a commit
whose rows were all handed over wakes no claim.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from schemas.base import EventData
from services.common.bulk import insert_rows
from services.common.cloudevents import OutgoingEvent, new_event
from services.common.db import OUTBOX_NOTIFY_SETTING
from services.common.logging import get_logger
from services.common.messaging import outbox_messages
from services.common.outbox.handoff import (
    OUTBOX_COLUMNS,
    Taker,
    handed_rows,
    lease_values,
    leased_insert_sql,
    leased_result_sql,
    taker_for,
)
from services.common.outbox.headers import stored_headers

__all__ = [
    "HANDED_SUFFIX",
    "OutboxRow",
    "PublishFn",
    "enqueue",
    "enqueue_all",
    "enqueue_outgoing",
    "hand_over",
    "heard_from_elsewhere",
    "mark_enqueued",
    "notify_relays",
    "outbox_row",
    "pending_count",
    "watch_commits",
]

log = get_logger(__name__)

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]

_DIRTY = "aviso_outbox_dirty"
_HANDED = "aviso_outbox_handed"
_WRITTEN = "aviso_outbox_written"
_NOTIFY_CHANNEL = "aviso_outbox"
# The payload of this process's NOTIFYs: random, so it says nothing but "not yours".
_PROCESS_TOKEN = uuid.uuid4().hex
# Appended to it when the commit's rows were all handed to this process's relay.
HANDED_SUFFIX = ":handed"

# Relays of this process (their `wake`), asked for a claim after any commit that
# enqueued a row it did not hand over.
_wakers: set[Callable[[], None]] = set()
# Others that want to hear of the same commits (and of other processes' NOTIFYs that a
# relay of this process receives): see `watch_commits`.
_watchers: set[asyncio.Event] = set()
# Those that want to hear of other processes' commits only (see `watch_commits`).
_elsewhere_watchers: set[asyncio.Event] = set()


@event.listens_for(Session, "after_commit")
def _wake_relays_after_commit(session: Session) -> None:
    handed: list[tuple[Taker, list[dict[str, Any]], float]] = session.info.pop(_HANDED, [])
    dirty = session.info.pop(_DIRTY, False)
    written = session.info.pop(_WRITTEN, False)
    for taker, rows, leased_at in handed:
        taker.take(rows, leased_at)
    if dirty:
        for waker in _wakers:
            waker()
    if dirty or written:
        for watcher in _watchers:
            watcher.set()


def watch_commits(watcher: asyncio.Event, *, elsewhere_only: bool = False) -> Callable[[], None]:
    """Set `watcher` after every commit that enqueued a row, in this process or (on
    PostgreSQL, while a relay of this process listens) another process of the same
    component; returns the function that stops it. With `elsewhere_only`, after other
    processes' commits only: for a worker that this process's own writers wake directly.

    A state change worth publishing comes with an event, so a background worker can sleep
    through quiet times and still hear of new work at once (the escalation worker learns
    of new timers this way instead of polling for them twice a second).
    """
    watchers = _elsewhere_watchers if elsewhere_only else _watchers
    watchers.add(watcher)
    return lambda: watchers.discard(watcher)


def heard_from_elsewhere() -> None:
    """Another process committed rows to the outbox (its NOTIFY reached a relay here)."""
    for watcher in (*_watchers, *_elsewhere_watchers):
        watcher.set()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_DIRTY, None)
    session.info.pop(_HANDED, None)
    session.info.pop(_WRITTEN, None)


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
    """The row's values, in `OUTBOX_COLUMNS`: its headers stored as what the other columns
    do not say (headers.py)."""
    headers = stored_headers(
        outgoing.headers,
        message_id=outgoing.message_id,
        event_type=outgoing.event_type,
        key=outgoing.key,
    )
    return {
        "message_id": outgoing.message_id,
        "topic": outgoing.topic,
        "key": outgoing.key,
        "event_type": outgoing.event_type,
        "headers": headers,
        "payload": outgoing.payload,
        "created_at": now,
        "attempts": 0,
    }


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
    elif postgres:
        taker = taker_for(session)
        values: dict[str, object] = {
            f"o_{name}": [row[name] for row in rows] for name in OUTBOX_COLUMNS
        }
        result = await session.execute(_leased_insert(), {**values, **lease_values(taker)})
        written = result.one()
        hand_over(session, taker, rows, written.leased_ids, written.leased_messages)
        return
    else:
        for write in alongside:
            await session.execute(write)
        await insert_rows(session, outbox_messages, rows)
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


def notify_relays(handed: sa.ColumnElement[bool] | None = None) -> sa.ColumnElement[Any]:
    """The NOTIFY `enqueue` sends with its rows (PostgreSQL), for a statement that writes
    outbox rows itself: relays of other processes wake; this process's ignore it.

    `handed`: true when every row the statement wrote was leased to this process's relay
    (handoff.py). The payload then ends in `HANDED_SUFFIX`, and other processes' relays
    skip the claim it would start (it could only find those rows leased), while whoever
    watches commits there still hears of it (`heard_from_elsewhere`).
    """
    channel = sa.literal(_NOTIFY_CHANNEL + "_") + sa.func.current_schema()
    payload: sa.ColumnElement[str] = sa.literal(_PROCESS_TOKEN)
    if handed is not None:
        payload = payload + sa.case((handed, sa.literal(HANDED_SUFFIX)), else_=sa.literal(""))
    # Skipped while no relay of another process listens (peers.py sets the connection's
    # setting to 'off'): on PostgreSQL 15 every NOTIFY signals every listening connection
    # of the database, whatever its channel, and each reads the queue for it.
    wanted = sa.func.current_setting(sa.literal(OUTBOX_NOTIFY_SETTING), sa.true())
    return sa.case(
        (wanted.is_distinct_from(sa.literal("off")), sa.func.pg_notify(channel, payload))
    )


@cache
def _leased_insert() -> sa.TextClause:
    """`enqueue`'s INSERT on PostgreSQL: the rows leased as they go in (handoff.py), and the
    NOTIFY (LIMIT 1: one, whatever the row count; a data-modifying CTE runs whole)."""
    t = outbox_messages
    notify = notify_relays().compile(dialect=_PG, compile_kwargs={"literal_binds": True})
    sql = (
        f"WITH inserted AS ({leased_insert_sql('o_')} "  # noqa: S608 - constant; rows are bound
        "ORDER BY _n RETURNING id, message_id, claimed_by) "
        f"SELECT (SELECT {notify} FROM (SELECT 1 FROM inserted LIMIT 1) AS one) AS notified, "
        f"{leased_result_sql('inserted')}"
    )
    # Typed parameters: each column's own bind processing (JSON, aware timestamps) applies.
    return sa.text(sql).bindparams(
        *(
            sa.bindparam(f"o_{name}", type_=postgresql.ARRAY(t.c[name].type))
            for name in OUTBOX_COLUMNS
        ),
        sa.bindparam("lease_by", type_=sa.String),
        sa.bindparam("lease_s", type_=sa.Float),
    )


def hand_over(
    session: AsyncSession,
    taker: Taker | None,
    rows: Sequence[Mapping[str, object]],
    leased_ids: Sequence[int] | None,
    leased_messages: Sequence[str] | None,
) -> None:
    """After a statement wrote `rows` with `leased_insert_sql` (leased to `taker`): at commit,
    hand the leased ones to the relay and wake a claim only for the rest."""
    handed = handed_rows(rows, leased_ids, leased_messages)
    info = session.sync_session.info
    if handed and taker is not None:
        info.setdefault(_HANDED, []).append((taker, handed, time.monotonic()))
    if len(handed) < len(rows):
        info[_DIRTY] = True
    elif rows:
        info[_WRITTEN] = True


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
