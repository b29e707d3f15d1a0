"""Rows a commit hands straight to this process's relay: published from memory, no claim.

On PostgreSQL the INSERT that writes outbox rows leases each row to the relay this
process runs for the same engine (`claimed_by`, `claimed_until` set by the INSERT,
with the database's clock as a claim does), but only a row whose key has no earlier
unsent row held by anyone else (or by no one, or on a lapsed lease): so a key's order
across relays keeps the claim's rule (a row is taken only with, or after, every earlier
row of its key). A key's later row joins its earlier one at the same relay, which sends
them in order (lingering.py says how it keeps that order when a row fails). The
statement returns the rows it leased; once the transaction commits they go to the relay
as they are in memory, and the relay publishes them and deletes them (one
statement). A commit whose rows were all handed over wakes no claim; a row left
unleased (its key had a row waiting elsewhere) wakes one, as before.

If the transaction rolls back, nothing was inserted and nothing is handed over. If the
process dies after the commit, its rows stay leased until the lease ends, and then any
relay claims them like the rows of a relay that died mid-round. A write inside a
savepoint leases nothing (the savepoint could roll back alone, and its rows with it).
SQLite keeps the claim: its relay shares the one connection of the process, so a claim
costs no round trip there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.common.messaging import outbox_messages

__all__ = [
    "LEASE_COLUMNS",
    "OUTBOX_COLUMNS",
    "Taker",
    "handed_rows",
    "lease_columns",
    "lease_values",
    "leased_insert_sql",
    "leased_result_sql",
    "register_taker",
    "taker_for",
]

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]

# The outbox columns `outbox_row` fills, in its order.
OUTBOX_COLUMNS = (
    "message_id",
    "topic",
    "key",
    "event_type",
    "headers",
    "payload",
    "created_at",
    "attempts",
)
# The lease's bind parameters: the relay (NULL: lease nothing) and the lease in seconds.
LEASE_COLUMNS = ("lease_by", "lease_s")


@dataclass(frozen=True)
class Taker:
    """A running relay that takes rows handed over at commit."""

    relay_id: str
    lease_s: float
    # The rows, and when (time.monotonic) their INSERT ran: their lease started then.
    take: Callable[[list[dict[str, Any]], float], None]


# Per engine (the sync engine object the sessions are bound to), its relay in this process.
_takers: dict[Engine, Taker] = {}


def register_taker(engine: AsyncEngine, taker: Taker) -> Callable[[], None]:
    """Let commits on `engine` hand their rows to `taker`; returns the function that stops it."""
    sync = engine.sync_engine
    _takers.setdefault(sync, taker)

    def unregister() -> None:
        if _takers.get(sync) is taker:
            del _takers[sync]

    return unregister


def taker_for(session: AsyncSession) -> Taker | None:
    """The relay that takes what `session` commits (PostgreSQL, outside a savepoint)."""
    if not _takers or session.sync_session.in_nested_transaction():
        return None
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return _takers.get(engine) if engine.dialect.name == "postgresql" else None


def lease_values(taker: Taker | None) -> dict[str, object]:
    """The lease's bind values for a statement written with `leased_insert_sql`."""
    if taker is None:
        return {"lease_by": None, "lease_s": 0.0}
    return {"lease_by": taker.relay_id, "lease_s": taker.lease_s}


@cache
def leased_insert_sql(prefix: str) -> str:
    """The INSERT of outbox rows given as one array per column (`:<prefix><column>`, in
    `OUTBOX_COLUMNS`), each leased to `:lease_by` for `:lease_s` seconds unless its key has
    an unsent row already (or `:lease_by` is NULL).

    The caller appends its WHERE (on `r.<column>`), `ORDER BY _n` (ids in the order given)
    and `RETURNING id, message_id, claimed_by` for `leased_result_sql`.
    """
    t = outbox_messages
    names = ", ".join(_quoted(name) for name in OUTBOX_COLUMNS)
    picked = ", ".join(f"r.{_quoted(name)}" for name in OUTBOX_COLUMNS)
    arrays = ", ".join(
        f"CAST(:{prefix}{name} AS {t.c[name].type.compile(dialect=_PG)}[])"
        for name in OUTBOX_COLUMNS
    )
    # Which of these keys have an unsent row held by anyone else (or by no one, or on a
    # lapsed lease): read once per statement (the index on unsent rows' keys answers it),
    # not once per row. A per-row look-up made PostgreSQL re-plan every statement that
    # carries this INSERT: a generic plan counts ten rows for an array it has not seen,
    # so ten look-ups, and lost to a custom plan made for the actual rows (0.3 ms of
    # planning a statement; docs/performance.md). The database's clock, as a claim's lease.
    lease_by = "CAST(:lease_by AS VARCHAR(64))"
    keys = f"CAST(:{prefix}key AS {t.c.key.type.compile(dialect=_PG)}[])"
    free = f"{lease_by} IS NOT NULL AND r.key <> ALL(held.keys)"
    return (
        f"INSERT INTO outbox_messages ({names}, claimed_by, claimed_until) "  # noqa: S608
        f"SELECT {picked}, CASE WHEN {free} THEN {lease_by} END, "
        f"CASE WHEN {free} THEN clock_timestamp() + "
        "make_interval(secs => CAST(:lease_s AS DOUBLE PRECISION)) END "
        f"FROM unnest({arrays}) WITH ORDINALITY AS r({names}, _n) "
        "CROSS JOIN (SELECT ARRAY(SELECT waiting.key FROM outbox_messages AS waiting "
        f"WHERE waiting.key = ANY({keys}) AND waiting.sent_at IS NULL "
        f"AND NOT (waiting.claimed_by = {lease_by} "
        "AND waiting.claimed_until > clock_timestamp())) AS keys) AS held"
    )


def lease_columns(key: sa.ColumnElement[str]) -> list[sa.ColumnElement[Any]]:
    """`claimed_by` and `claimed_until` of one row of `key`, leased as `leased_insert_sql`
    leases (for a statement built with SQLAlchemy Core; `:lease_by`, `:lease_s` bound)."""
    lease_by = sa.bindparam("lease_by", type_=sa.String)
    waiting = outbox_messages.alias("waiting")
    now = sa.func.clock_timestamp(type_=sa.DateTime(timezone=True))
    free = sa.and_(
        lease_by.is_not(None),
        ~sa.exists().where(
            waiting.c.key == key,
            waiting.c.sent_at.is_(None),
            ~sa.and_(waiting.c.claimed_by == lease_by, waiting.c.claimed_until > now),
        ),
    )
    until = now + sa.func.make_interval(
        0, 0, 0, 0, 0, 0, sa.bindparam("lease_s", type_=sa.Float), type_=sa.Interval()
    )
    return [
        sa.case((free, lease_by)).label("claimed_by"),
        sa.case((free, until)).label("claimed_until"),
    ]


def leased_result_sql(cte: str) -> str:
    """Two columns of the statement's result: the ids and message ids the INSERT in
    CTE `cte` leased (arrays in id order; NULL for none)."""
    leased = f"FROM {cte} WHERE claimed_by IS NOT NULL"
    return (
        f"(SELECT array_agg(id ORDER BY id) {leased}) AS leased_ids, "
        f"(SELECT array_agg(message_id ORDER BY id) {leased}) AS leased_messages"
    )


def handed_rows(
    rows: Sequence[Mapping[str, object]],
    leased_ids: Sequence[int] | None,
    leased_messages: Sequence[str] | None,
) -> list[dict[str, Any]]:
    """The rows the INSERT leased, as `rows` gave them, each with its id."""
    if not leased_ids or not leased_messages:
        return []
    by_message = {row["message_id"]: row for row in rows}
    return [
        {**by_message[message_id], "id": row_id}
        for row_id, message_id in zip(leased_ids, leased_messages, strict=True)
    ]


def _quoted(name: str) -> str:
    return str(_PG.identifier_preparer.quote(name))
