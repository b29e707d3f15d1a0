"""The engine's statements on PostgreSQL, sent straight to asyncpg (used by `store.py`).

Why: on router's notice path the engine's accept INSERT and the settling statement of
every outcome round went through SQLAlchemy's execution path (the ORM session's execute,
the statement's cache key, bind and result processing, its asyncpg adapter's cursor):
about 0.35 ms of Python a statement where the relay's settling measured it, several times
a notice. Here each statement is built once with SQLAlchemy and compiled once
(`services/common/direct.py`), then only its values go to asyncpg, which keeps it
prepared per connection. Every batch size takes the same text: rows go as one array per
column (`unnest`), ids as one array.

Where a statement joins the caller's unit of work (the accept INSERT, in the consumer's
transaction; the claim and the settling statement, in the round's transaction beside the
plan's reads and hooks) it runs on the session's own connection, in its transaction. A renewal and a
next-due read outside a round are whole transactions of their own: autocommitted on a
pooled connection, with no session at all.

The guards are the statements' own, unchanged: a settlement locks and writes only rows
still claimed by this owner (`settle_query.py`), a renewal extends only rows still ours
and skips locked ones. Errors come from asyncpg unwrapped; callers that tell an outage
from a bug use `services.common.direct.asyncpg_unreachable` (the consumer's applier and
HTTP problem handlers already do). SQLite keeps the SQLAlchemy statements of `store.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.common.bulk import column_arrays, unnest_insert
from services.common.delivery.claim_query import ClaimAsk, claim_arguments, claim_statement
from services.common.delivery.insert_query import PENDING_COLUMNS
from services.common.delivery.records import state_is
from services.common.delivery.settle_query import (
    SettleCarry,
    SettleRead,
    settle_arrays,
    settle_batch_statement,
    settle_params,
    share_batch_statement,
)
from services.common.direct import DirectStatement

if TYPE_CHECKING:
    from services.common.delivery.store import Settlement

__all__ = ["DirectRounds", "next_due_statement", "settle_carried"]


class DirectRounds:
    """The engine's statements on one PostgreSQL delivery records table, built once."""

    def __init__(self, table: sa.Table) -> None:
        self._insert = DirectStatement(
            lambda: unnest_insert(table, PENDING_COLUMNS, True, "{insert} RETURNING delivery_id")
        )
        self._table = table
        self._settle = DirectStatement(lambda: settle_batch_statement(table))
        self._settle_reading: dict[str, DirectStatement] = {}
        self._share = DirectStatement(lambda: share_batch_statement(table))
        self._claims = {
            lapsed: DirectStatement(partial(claim_statement, table, lapsed=lapsed))
            for lapsed in (True, False)
        }
        self._renew = DirectStatement(lambda: _renew_statement(table))
        self._still_ours = DirectStatement(lambda: _still_ours_statement(table))
        self._next_due = DirectStatement(lambda: next_due_statement(table))

    async def insert(self, session: AsyncSession, rows: Sequence[Mapping[str, object]]) -> set[str]:
        """Insert pending (or handed-off) rows in the session's transaction, a known delivery
        id left as it is; the ids that were new. One statement for any number of rows."""
        found = await self._insert.fetch(session, column_arrays(PENDING_COLUMNS, rows))
        return {row[0] for row in found}

    async def claim(self, session: AsyncSession, ask: ClaimAsk) -> list[Any]:
        """Claim what `ask` says in the session's transaction; the rows taken (asyncpg
        Records, every column; JSON as text)."""
        return await self._claims[ask.lapsed].fetch(session, claim_arguments(ask))

    async def settle(self, session: AsyncSession, arrays: Mapping[str, Any]) -> set[str]:
        """Lock and settle a batch (`settle_query.settle_arrays`) in the session's
        transaction; the ids written (still ours)."""
        return {row[0] for row in await self._settle.fetch(session, arrays)}

    async def settle_reading(
        self, session: AsyncSession, arrays: Mapping[str, Any], read: SettleRead
    ) -> tuple[set[str], list[Any]]:
        """`settle` with `read` carried in the same statement: (the ids written, the rows
        `read.sql` returned for `read.ids`)."""
        statement = self._settle_reading.get(read.sql)
        if statement is None:
            table, sql = self._table, read.sql
            statement = DirectStatement(lambda: settle_batch_statement(table, sql))
            self._settle_reading[read.sql] = statement
        rows = await statement.fetch(session, {**arrays, "read_ids": list(read.ids)})
        settled = rows[0]["settled_ids"] if rows else None
        # A read that found nothing still returns its one row, of NULLs.
        return set(settled or ()), [row for row in rows if row[1] is not None]

    async def share(self, session: AsyncSession, shared: Sequence[tuple[str, str, str]]) -> None:
        """Give each (recipient, channel)'s pending records of unknown destination the key
        learnt for it, in the session's transaction (`settle_query.share_batch_statement`)."""
        values = {name: [item[n] for item in shared] for n, name in enumerate(_SHARE)}
        await self._share.execute(session, values)

    async def renew(
        self, engine: AsyncEngine, *, owner: str, ids: Sequence[str], until: datetime
    ) -> tuple[set[str], set[str]]:
        """Extend our unlocked claims on `ids`, autocommitted; (renewed, not renewed but
        still claimed by us). The second statement runs only when some were not renewed:
        under READ COMMITTED it sees what a second statement in one transaction saw."""
        values = {"ids": list(ids), "owner": owner, "until": until}
        renewed = {row[0] for row in await self._renew.fetch_alone(engine, values)}
        rest = [i for i in ids if i not in renewed]
        if not rest:
            return renewed, set()
        found = await self._still_ours.fetch_alone(engine, {"ids": rest, "owner": owner})
        return renewed, {row[0] for row in found}

    async def next_due(
        self, session: AsyncSession | None, engine: AsyncEngine
    ) -> tuple[datetime | None, datetime | None]:
        """(earliest retry timer, earliest lease end): in `session`'s transaction when
        given, else autocommitted on its own."""
        if session is not None:
            row = await self._next_due.fetchrow(session, {})
        else:
            row = await self._next_due.fetchrow_alone(engine, {})
        return row[0], row[1]


_SHARE = ("recipients", "channels", "keys")


async def settle_carried(
    session: AsyncSession, *, owner: str, settlements: Sequence[Settlement], carry: SettleCarry
) -> set[uuid.UUID]:
    """Settle a batch with the plan's writes carried in the same statement (`SettleCarry`),
    sent without BEGIN when nothing opened a transaction on `session` yet: PostgreSQL
    then commits it by itself and the unit of work's commit has nothing to send. The ids
    written (still ours). No busy put-backs: their shared destinations are a statement
    of their own (`DirectRounds.share`)."""
    if any(s.share_with is not None for s in settlements):
        raise ValueError("a busy put-back is not settled with a carried write")
    rows = sorted((settle_params(s) for s in settlements), key=lambda row: row["b_id"])
    row = await carry.statement.fetchrow(
        session, {**settle_arrays(rows, owner), **carry.values}, lone=True
    )
    held = frozenset(row["settled_ids"] or ())
    carry.finish(row, held)
    return {uuid.UUID(i) for i in held}


def _ids() -> Any:
    return sa.bindparam("ids", type_=postgresql.ARRAY(sa.String))


def _renew_statement(t: sa.Table) -> sa.Executable:
    # As the SQLAlchemy path's renewal: only rows ours and in flight, rows another
    # transaction holds (our own settlement, a takeover) skipped rather than waited for.
    held = t.alias("held")
    owner = sa.bindparam("owner", type_=sa.String)
    mine = (
        sa.select(held.c.delivery_id)
        .where(held.c.delivery_id == sa.any_(_ids()), held.c.claimed_by == owner,
               held.c.state == "sending")
        .with_for_update(skip_locked=True, of=held)
    )  # fmt: skip
    return (
        sa.update(t)
        .where(t.c.delivery_id.in_(mine.scalar_subquery()), t.c.claimed_by == owner)
        .values(claimed_until=sa.bindparam("until", type_=t.c.claimed_until.type))
        .returning(t.c.delivery_id)
    )


def _still_ours_statement(t: sa.Table) -> sa.Executable:
    owner = sa.bindparam("owner", type_=sa.String)
    return sa.select(t.c.delivery_id).where(
        t.c.delivery_id == sa.any_(_ids()), t.c.claimed_by == owner, t.c.state == "sending"
    )


def next_due_statement(t: sa.Table) -> sa.Select[Any]:
    """(earliest retry timer, earliest lease end) of the table (both back ends): each a
    read of one in-flight index (`ix_<name>_due`, `ix_<name>_leased`)."""
    pending = sa.select(sa.func.min(t.c.next_attempt_at)).where(state_is(t.c.state, "pending"))
    leased = sa.select(sa.func.min(t.c.claimed_until)).where(state_is(t.c.state, "sending"))
    return sa.select(pending.scalar_subquery(), leased.scalar_subquery())
