"""Persistence of delivery records: the claim, the lease, the settlement.

`SqlDeliveryStore` works on PostgreSQL (claims with `FOR UPDATE SKIP LOCKED`, so two
dispatchers never take one record) and SQLite (the same statement runs under the
database's single writer lock, taken at BEGIN, so it is atomic there too). The engine
talks to the `DeliveryStore` protocol, which unit tests implement in memory.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.db import AfterCommit, UnitOfWork
from services.common.delivery.records import DeliveryOrder, DeliveryRecord, DeliveryState

__all__ = ["DeliveryStore", "Settlement", "SqlDeliveryStore", "Transaction"]


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


class DeliveryStore(Protocol):
    """The engine's persistence (SQL here, in memory in unit tests)."""

    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    def reading(self) -> AbstractAsyncContextManager[AsyncSession]: ...

    async def insert(
        self, session: AsyncSession, order: DeliveryOrder, *, now: datetime, give_up_at: datetime
    ) -> bool: ...

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
    ) -> list[DeliveryRecord]: ...

    async def renew(self, *, owner: str, ids: Sequence[uuid.UUID], until: datetime) -> int: ...

    async def settle(self, tx: Transaction, *, owner: str, settlement: Settlement) -> bool: ...

    async def next_due(self) -> datetime | None: ...


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; everything stored is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class SqlDeliveryStore:
    """Delivery records in a service's own database (its schema, or its SQLite file)."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], table: sa.Table) -> None:
        self._sessions = sessions
        self._t = table

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A unit of work: committed by the caller, rolled back otherwise."""
        async with UnitOfWork(self._sessions) as uow:
            yield uow

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A short transaction for the plan's look-ups; never written to."""
        async with self._sessions() as session, session.begin():
            yield session

    async def insert(
        self, session: AsyncSession, order: DeliveryOrder, *, now: datetime, give_up_at: datetime
    ) -> bool:
        """Insert a pending record; False when the delivery id was already there."""
        values = {
            "delivery_id": str(order.delivery_id),
            "aggregate_id": str(order.aggregate_id),
            "aggregate_version": order.aggregate_version,
            "recipient_id": str(order.recipient_id),
            "channel": order.channel,
            "purpose": order.purpose,
            "language": order.language,
            "context": dict(order.context),
            "correlation_id": order.correlation_id,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": order.not_before or now,
            "give_up_at": give_up_at,
            "created_at": now,
            "updated_at": now,
        }
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement: Any = pg_insert(self._t).values(values).on_conflict_do_nothing()
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(self._t).values(values).on_conflict_do_nothing()
        else:  # pragma: no cover - only the two back ends exist
            raise RuntimeError(f"unsupported database {dialect}")
        result = await session.execute(statement)
        return bool(cast(Any, result).rowcount)

    async def cancel(
        self,
        session: AsyncSession,
        *,
        aggregate_id: uuid.UUID,
        now: datetime,
        recipient_id: uuid.UUID | None = None,
        purposes: Sequence[str] | None = None,
    ) -> int:
        """pending -> cancelled for an aggregate's records; a send in flight completes."""
        t = self._t
        conditions = [t.c.aggregate_id == str(aggregate_id), t.c.state == "pending"]
        if recipient_id is not None:
            conditions.append(t.c.recipient_id == str(recipient_id))
        if purposes is not None:
            conditions.append(t.c.purpose.in_(list(purposes)))
        result = await session.execute(
            sa.update(t).where(*conditions).values(state="cancelled", updated_at=now)
        )
        return int(cast(Any, result).rowcount or 0)

    def _due(self, table: Any, now: datetime) -> Any:
        return sa.or_(
            sa.and_(table.c.state == "pending", table.c.next_attempt_at <= now),
            # A claimant that stopped renewing (crashed) loses the record.
            sa.and_(table.c.state == "sending", table.c.claimed_until < now),
        )

    async def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        exclude_keys: Sequence[str] = (),
    ) -> list[DeliveryRecord]:
        """pending|lease-expired -> sending: take up to `limit` due records, oldest due first."""
        t = self._t
        candidate = t.alias("candidate")
        conditions = [self._due(candidate, now)]
        if exclude_keys:
            # Destinations this process is not sending to now (saturated, breaker open):
            # leave their records for later or for another process.
            conditions.append(
                sa.or_(
                    candidate.c.destination_key.is_(None),
                    candidate.c.destination_key.not_in(list(exclude_keys)),
                )
            )
        picked = (
            sa.select(candidate.c.delivery_id)
            .where(*conditions)
            .order_by(candidate.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True, of=candidate)
        )
        statement = (
            sa.update(t)
            # The due condition again: PostgreSQL re-checks it on a row another claimant
            # changed meanwhile, so a row is never taken twice.
            .where(t.c.delivery_id.in_(picked.scalar_subquery()), self._due(t, now))
            .values(state="sending", claimed_by=owner, claimed_until=lease_until, updated_at=now)
            .returning(*t.c)
        )
        async with self._sessions() as session, session.begin():
            rows = (await session.execute(statement)).mappings().all()
        records = [_record(row) for row in rows]
        return sorted(records, key=lambda r: (r.created_at, str(r.delivery_id)))

    async def renew(self, *, owner: str, ids: Sequence[uuid.UUID], until: datetime) -> int:
        """Extend our claims on records still in flight; returns how many are still ours."""
        if not ids:
            return 0
        t = self._t
        held = t.alias("held")
        # A row being settled right now is locked by its settlement (which ends the
        # claim anyway): skip it rather than wait, which could deadlock with that batch.
        mine = (
            sa.select(held.c.delivery_id)
            .where(
                held.c.delivery_id.in_([str(i) for i in ids]),
                held.c.claimed_by == owner,
                held.c.state == "sending",
            )
            .with_for_update(skip_locked=True, of=held)
        )
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                sa.update(t)
                .where(t.c.delivery_id.in_(mine.scalar_subquery()), t.c.claimed_by == owner)
                .values(claimed_until=until)
            )
        return int(cast(Any, result).rowcount or 0)

    async def settle(self, tx: Transaction, *, owner: str, settlement: Settlement) -> bool:
        """Write the outcome if the claim is still ours; False when the lease was lost."""
        t = self._t
        values: dict[str, Any] = {
            "state": settlement.state,
            "updated_at": settlement.at,
            "claimed_by": None,
            "claimed_until": None,
        }
        if settlement.attempted:
            values["attempts"] = t.c.attempts + 1
        if settlement.next_attempt_at is not None:
            values["next_attempt_at"] = settlement.next_attempt_at
        if settlement.error_class is not None:
            values["last_error_class"] = settlement.error_class
        if settlement.destination_key is not None:
            values["destination_key"] = settlement.destination_key
        if settlement.state == "delivered":
            values["delivered_at"] = settlement.at
        result = await tx.session.execute(
            sa.update(t)
            .where(
                t.c.delivery_id == str(settlement.delivery_id),
                t.c.claimed_by == owner,
                t.c.state == "sending",
            )
            .values(**values)
        )
        return bool(cast(Any, result).rowcount)

    async def next_due(self) -> datetime | None:
        """The earliest retry timer or foreign lease expiry: when to look again."""
        t = self._t
        pending = sa.select(sa.func.min(t.c.next_attempt_at)).where(t.c.state == "pending")
        leased = sa.select(sa.func.min(t.c.claimed_until)).where(t.c.state == "sending")
        async with self._sessions() as session:
            row = (
                await session.execute(
                    sa.select(pending.scalar_subquery(), leased.scalar_subquery())
                )
            ).one()
            await session.rollback()
        times = [v for v in (_utc(row[0]), _utc(row[1])) if v is not None]
        return min(times) if times else None


def _record(row: Any) -> DeliveryRecord:
    context = row["context"]
    if isinstance(context, str):
        context = json.loads(context)
    return DeliveryRecord(
        delivery_id=uuid.UUID(row["delivery_id"]),
        aggregate_id=uuid.UUID(row["aggregate_id"]),
        aggregate_version=row["aggregate_version"],
        recipient_id=uuid.UUID(row["recipient_id"]),
        channel=row["channel"],
        purpose=row["purpose"],
        language=row["language"],
        context=context,
        correlation_id=row["correlation_id"],
        attempts=row["attempts"],
        created_at=cast(datetime, _utc(row["created_at"])),
        give_up_at=cast(datetime, _utc(row["give_up_at"])),
        destination_key=row["destination_key"],
        last_error_class=row["last_error_class"],
    )
