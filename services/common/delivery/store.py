"""Persistence of delivery records: the claim, the lease, the settlement.

`SqlDeliveryStore` works on PostgreSQL (claims with `FOR UPDATE SKIP LOCKED`, so two
dispatchers never take one record) and SQLite (the same statement runs under the
database's single writer lock, taken at BEGIN, so it is atomic there too). The engine
talks to the `DeliveryStore` protocol, which unit tests implement in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.db import AfterCommit, UnitOfWork
from services.common.delivery.claim_query import SCAN_FACTOR, ClaimAsk, claim_update
from services.common.delivery.direct_rounds import DirectRounds, next_due_statement
from services.common.delivery.insert_query import insert_statement, pending_row
from services.common.delivery.records import (
    DeliveryOrder,
    DeliveryRecord,
    DeliveryState,
    as_utc,
    record_from_row,
    state_is,
)
from services.common.delivery.settle_query import (
    SettleRead,
    settle_arrays,
    settle_params,
    settle_statement,
    share_statement,
)
from services.common.direct import is_postgres_session

__all__ = [
    "Accepted",
    "DeliveryStore",
    "Renewal",
    "Settlement",
    "SqlDeliveryStore",
    "Transaction",
]


# What the engine reads about records it has just claimed, in the claim's transaction.
ReadClaimed = Callable[[AsyncSession, list[DeliveryRecord]], Awaitable[None]]


class Transaction(Protocol):
    """What a plan's hooks receive: the unit of work the outcome is recorded in."""

    @property
    def session(self) -> AsyncSession: ...

    def after_commit(self, effect: AfterCommit) -> None: ...

    async def commit(self) -> None: ...


@dataclass(frozen=True)
class Settlement:
    """The new state of a claimed record, written only while the claim is still ours."""

    delivery_id: uuid.UUID
    state: DeliveryState
    at: datetime
    attempted: bool = False  # one more network attempt happened
    next_attempt_at: datetime | None = None
    error_class: str | None = None
    destination_key: str | None = None
    segments: int | None = None  # the SMS gateway's receipt, for a delivered text
    # A put-back because the destination was busy: (recipient, channel) whose other
    # pending records of unknown destination are marked with `destination_key` too.
    share_with: tuple[uuid.UUID, str] | None = None


@dataclass(frozen=True)
class Renewal:
    """What a renewal found: claims extended, and claims another process holds now.

    An id in neither is locked by a transaction (our own settlement of it, or another
    process taking it over this instant): not renewed, and not known to be lost.
    """

    renewed: frozenset[uuid.UUID]
    lost: frozenset[uuid.UUID]

    @classmethod
    def of(cls, renewed: set[str], lost: set[str]) -> Renewal:
        """From the ids as the table holds them."""
        return cls(frozenset(map(uuid.UUID, renewed)), frozenset(map(uuid.UUID, lost)))


@dataclass(frozen=True)
class _Claim:
    """What one claim asks for (`SqlDeliveryStore.claim`)."""

    owner: str
    now: datetime
    lease_until: datetime
    limit: int
    exclude_keys: Sequence[str]
    room: Mapping[str, int] | None
    default_room: int | None


@dataclass(frozen=True)
class Accepted:
    """An order with its give-up time, ready to be inserted as a pending record, or (a
    hand-off, `claimed_until` set) as already claimed by the accepting engine."""

    order: DeliveryOrder
    give_up_at: datetime
    claimed_until: datetime | None = None


class DeliveryStore(Protocol):
    """The engine's persistence (SQL here, in memory in unit tests)."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def insert_many(
        self,
        session: AsyncSession,
        orders: Sequence[Accepted],
        *,
        now: datetime,
        owner: str | None = None,
    ) -> set[uuid.UUID]: ...

    async def cancel(
        self,
        session: AsyncSession,
        *,
        aggregate_id: uuid.UUID,
        now: datetime,
        recipient_id: uuid.UUID | None,
        purposes: Sequence[str] | None,
    ) -> int: ...

    async def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        exclude_keys: Sequence[str],
        room: Mapping[str, int] | None = None,
        default_room: int | None = None,
        read: ReadClaimed | None = None,
        tx: Transaction | None = None,
    ) -> list[DeliveryRecord]: ...

    async def renew(self, *, owner: str, ids: Sequence[uuid.UUID], until: datetime) -> Renewal: ...

    async def settle_many(
        self,
        tx: Transaction,
        *,
        owner: str,
        settlements: Sequence[Settlement],
        read: SettleRead | None = None,
    ) -> set[uuid.UUID]: ...

    async def next_due(self, tx: Transaction | None = None) -> datetime | None: ...


class SqlDeliveryStore:
    """Delivery records in a service's own database (its schema, or its SQLite file)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        table: sa.Table,
        lapsed_every: timedelta = timedelta(seconds=1),
    ) -> None:
        self._sessions = sessions
        self._t = table
        # Claims look for records whose claimant stopped renewing at most this often: a
        # lease runs for seconds, and most claims would find none (a statement saved).
        self._lapsed_every = lapsed_every
        self._lapsed_looked_at: datetime | None = None
        # Built once: constructing these statements (and their cache keys' parts) on every
        # round was a measurable share of the engine's CPU.
        self._candidate = table.alias("candidate")
        self._settle_statements: dict[str, Any] = {}
        self._share_statement: Any = None
        self._insert_statements: dict[str, Any] = {}
        # PostgreSQL: the rounds' statements straight to asyncpg (direct_rounds.py).
        self._direct = DirectRounds(table)
        bind = sessions.kw.get("bind")
        direct = isinstance(bind, AsyncEngine) and bind.dialect.driver == "asyncpg"
        self._direct_engine: AsyncEngine | None = bind if direct else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A unit of work: committed by the caller, rolled back otherwise."""
        async with UnitOfWork(self._sessions) as uow:
            yield uow

    async def insert_many(
        self,
        session: AsyncSession,
        orders: Sequence[Accepted],
        *,
        now: datetime,
        owner: str | None = None,
    ) -> set[uuid.UUID]:
        """Insert pending records (one statement on PostgreSQL, one per 1,000 rows on SQLite);
        the delivery ids that were new.

        `INSERT ... ON CONFLICT DO NOTHING`: a delivery id already there (or twice in
        `orders`) is left as it is, so accepting is idempotent. An order with
        `claimed_until` is inserted as `owner`'s claim (state sending, leased), exactly
        as a claim would leave it: only if its id is new.
        """
        rows = [
            pending_row(a.order, a.give_up_at, a.claimed_until, now=now, owner=owner)
            for a in orders
        ]
        if is_postgres_session(session):
            return {uuid.UUID(i) for i in await self._direct.insert(session, rows)}
        dialect = session.get_bind().dialect.name
        statement = self._insert_statements.get(dialect)
        if statement is None:
            statement = self._insert_statements[dialect] = insert_statement(self._t, dialect)
        # Executed for many rows: SQLAlchemy sends them as multi-row VALUES, 1,000 rows a
        # statement, compiled once. RETURNING names the rows that were new.
        result = await session.execute(statement, rows)
        return {uuid.UUID(i) for i in result.scalars()}

    async def cancel(
        self,
        session: AsyncSession,
        *,
        aggregate_id: uuid.UUID,
        now: datetime,
        recipient_id: uuid.UUID | None = None,
        purposes: Sequence[str] | None = None,
    ) -> int:
        """pending -> cancelled for an aggregate's records; a send in flight completes.
        The state is written into the statement: router's aggregate index holds pending
        records only, and a generic plan could not prove a bound state matches it."""
        t = self._t
        conditions = [t.c.aggregate_id == str(aggregate_id), state_is(t.c.state, "pending")]
        if recipient_id is not None:
            conditions.append(t.c.recipient_id == str(recipient_id))
        if purposes is not None:
            conditions.append(t.c.purpose.in_(list(purposes)))
        result = await session.execute(
            sa.update(t).where(*conditions).values(state="cancelled", updated_at=now)
        )
        return int(cast(Any, result).rowcount or 0)

    async def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        exclude_keys: Sequence[str] = (),
        room: Mapping[str, int] | None = None,
        default_room: int | None = None,
        read: ReadClaimed | None = None,
        tx: Transaction | None = None,
    ) -> list[DeliveryRecord]:
        """pending|lease-expired -> sending: take up to `limit` due records, oldest due first.

        `read`, if given, is called with the claim's session and the claimed records
        before the claim commits (the plan's look-ups, in the same transaction); if it
        raises, nothing is claimed. With `tx` the claim runs in that transaction (the
        caller commits it: the engine settles outcomes in the same one), else in its own.

        At most `room[key]` records (`default_room` for a key not in `room`; no cap when
        None) of one known destination are taken: only as many as can be sent now, so
        no claimed record waits for a send slot. A record whose destination is not known
        yet (never resolved) is not capped.
        """
        claim = _Claim(
            owner=owner, now=now, lease_until=lease_until, limit=limit,
            exclude_keys=exclude_keys, room=room, default_room=default_room,
        )  # fmt: skip
        if tx is not None:
            return await self._claim_in(tx.session, claim, read)
        async with self._sessions() as session, session.begin():
            return await self._claim_in(session, claim, read)

    async def _claim_in(
        self, session: AsyncSession, claim: _Claim, read: ReadClaimed | None
    ) -> list[DeliveryRecord]:
        now, limit = claim.now, claim.limit
        # Two statements, each an ordered range of the (state, next_attempt_at) index:
        # one condition OR-ing both kinds of due record made the database collect and sort
        # every due record on each claim (25 ms a claim on SQLite with 10,000 due).
        kinds = [False]
        last = self._lapsed_looked_at
        if last is None or not last <= now < last + self._lapsed_every:
            self._lapsed_looked_at = now
            # A claimant that stopped renewing (crashed) loses the record: first, they
            # are few and have waited longest.
            kinds.insert(0, True)
        default_room = claim.default_room
        is_capped = default_room is not None or bool(claim.room)
        left = dict(claim.room or {})
        rows: list[Any] = []
        direct = is_postgres_session(session)
        for lapsed in kinds:
            want = limit - len(rows)
            if want <= 0:
                break
            ask = ClaimAsk(
                lapsed=lapsed, now=now, owner=claim.owner, lease_until=claim.lease_until,
                want=want, scan=want * SCAN_FACTOR if is_capped else want,
                excluded=tuple(claim.exclude_keys), room=left, default_room=default_room,
            )  # fmt: skip
            if direct:  # PostgreSQL: one text for every claim, straight to asyncpg
                taken = await self._direct.claim(session, ask)
            else:
                statement = claim_update(self._t, self._candidate, ask)
                taken = list((await session.execute(statement)).mappings().all())
            rows.extend(taken)
            for row in taken:
                key = row["destination_key"]
                if key is not None and is_capped:
                    base = left.get(key, default_room if default_room is not None else want)
                    left[key] = base - 1
        records = sorted(
            (record_from_row(row) for row in rows),
            key=lambda r: (r.created_at, str(r.delivery_id)),
        )
        if read is not None and records:
            await read(session, records)
        return records

    async def renew(self, *, owner: str, ids: Sequence[uuid.UUID], until: datetime) -> Renewal:
        """Extend our claims on `ids`; say which were extended and which another holds now.

        A row being settled right now is locked by its settlement (which ends the claim
        anyway): it is skipped rather than waited for, which could deadlock with that
        batch.
        """
        if not ids:
            return Renewal(frozenset(), frozenset())
        t = self._t
        wanted = {str(i) for i in ids}
        if self._direct_engine is not None:
            renewed, held_still = await self._direct.renew(
                self._direct_engine, owner=owner, ids=sorted(wanted), until=until
            )
            return Renewal.of(renewed, wanted - renewed - held_still)
        held = t.alias("held")
        mine = (
            sa.select(held.c.delivery_id)
            .where(held.c.delivery_id.in_(sorted(wanted)), held.c.claimed_by == owner,
                   held.c.state == "sending")
            .with_for_update(skip_locked=True, of=held)
        )  # fmt: skip
        lost: set[str] = set()
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                sa.update(t)
                .where(t.c.delivery_id.in_(mine.scalar_subquery()), t.c.claimed_by == owner)
                .values(claimed_until=until)
                .returning(t.c.delivery_id)
            )
            extended = set(result.scalars())
            if len(extended) < len(wanted):
                # Not renewed: locked by a transaction, or no longer ours (a plain read
                # does not wait for the locks).
                rest = sorted(wanted - extended)
                ours = sa.select(t.c.delivery_id).where(
                    t.c.delivery_id.in_(rest), t.c.claimed_by == owner, t.c.state == "sending"
                )
                lost = set(rest) - set((await session.execute(ours)).scalars())
        return Renewal.of(extended, lost)

    async def settle_many(
        self,
        tx: Transaction,
        *,
        owner: str,
        settlements: Sequence[Settlement],
        read: SettleRead | None = None,
    ) -> set[uuid.UUID]:
        """Write outcomes whose claim is still ours; returns those ids.

        The rows are locked first (in delivery-id order, the order every batch takes
        them in) and checked to be ours, then each gets its new state: one statement on
        PostgreSQL, two on SQLite. A row another process took over is not written: its
        outcome is that process's to record.
        """
        if not settlements:
            return set()
        if is_postgres_session(tx.session):
            held = await self._settle_batch_pg(tx.session, owner, settlements, read)
        else:
            held = await self._settle_each(tx.session, owner, settlements)
        shared = {
            (str(s.share_with[0]), s.share_with[1], s.destination_key)
            for s in settlements
            if s.share_with is not None and s.destination_key is not None
        }
        if shared:
            await self._share_destinations(tx.session, shared)
        return {uuid.UUID(i) for i in held}

    async def _settle_batch_pg(
        self,
        session: AsyncSession,
        owner: str,
        settlements: Sequence[Settlement],
        read: SettleRead | None,
    ) -> set[str]:
        """PostgreSQL: lock and settle the batch in one statement (`settle_batch_statement`),
        straight to asyncpg in the session's transaction (direct_rounds.py); with the
        plan's `read` carried in it, its rows left in `session.info[read.key]`."""
        rows = sorted((settle_params(s) for s in settlements), key=lambda row: row["b_id"])
        arrays = settle_arrays(rows, owner)
        if read is None:
            return await self._direct.settle(session, arrays)
        held, found = await self._direct.settle_reading(session, arrays, read)
        session.info[read.key] = (frozenset(read.ids), found)
        return held

    async def _settle_each(
        self, session: AsyncSession, owner: str, settlements: Sequence[Settlement]
    ) -> set[str]:
        """Lock the rows still ours, then one UPDATE executed for many rows (SQLite: the
        database's one writer lock, taken at BEGIN, already serialises batches)."""
        t = self._t
        locked = await session.execute(
            sa.select(t.c.delivery_id)
            .where(
                t.c.delivery_id.in_(sorted(str(s.delivery_id) for s in settlements)),
                t.c.claimed_by == owner,
                t.c.state == "sending",
            )
            .order_by(t.c.delivery_id)
            .with_for_update()
        )
        held = set(locked.scalars())
        rows = [settle_params(s) for s in settlements if str(s.delivery_id) in held]
        if rows:
            statement = self._settle_statements.get(owner)
            if statement is None:
                statement = self._settle_statements[owner] = settle_statement(t, owner)
            await session.execute(statement, rows)
        return held

    async def _share_destinations(
        self, session: AsyncSession, shared: set[tuple[str, str, str]]
    ) -> None:
        """Mark the pending records of each (recipient, channel) whose destination is not
        known yet with the destination just learned for one of them.

        A burst to one person (1,000 escalations to one backup) otherwise claimed every
        record as of unknown destination, uncapped, resolved it and put most of it back
        busy, round after round. A recipient's address on a channel is one address; the
        key is only a scheduling hint (the send resolves the address and its key again),
        so a stale one delays nothing for long. Rows another transaction holds are
        skipped, never waited for.
        """
        if is_postgres_session(session):  # one statement for every pair, straight to asyncpg
            await self._direct.share(session, sorted(shared))
            return
        statement = self._share_statement
        if statement is None:
            statement = self._share_statement = share_statement(self._t, self._candidate)
        params = [{"s_recipient": r, "s_channel": c, "s_key": k} for r, c, k in sorted(shared)]
        await session.execute(statement, params)

    async def next_due(self, tx: Transaction | None = None) -> datetime | None:
        """The earliest retry timer or foreign lease expiry: when to look again (in `tx`,
        the engine's claim, when given: no transaction of its own)."""
        row: Sequence[Any]
        if self._direct_engine is not None:
            row = await self._direct.next_due(tx.session if tx else None, self._direct_engine)
        elif tx is not None:
            row = (await tx.session.execute(next_due_statement(self._t))).one()
        else:
            async with self._sessions() as session:
                row = (await session.execute(next_due_statement(self._t))).one()
                await session.rollback()
        times = [v for v in (as_utc(row[0]), as_utc(row[1])) if v is not None]
        return min(times) if times else None
