"""What a service tells the engine: where to send, what to say, and what a result means.

The engine knows nothing about alerts or bulletins. A service implements `DeliveryPlan`
(usually by subclassing `BaseDeliveryPlan`) to

- choose how long a purpose may keep retrying (`give_up_after`),
- turn a record into a message with its address (`resolve`), in the short transaction
  of its own database that claimed the record: the address never leaves the service; the engine
  asks for a claimed batch at once (`resolve_all`, by default `resolve` for each), so a
  plan can read what the batch needs in one query instead of one per record,
- react to outcomes (`on_delivered`, `on_attempt_failed`, `on_failed`, `on_skipped`)
  inside the transaction that records the outcome: timeline rows, outbox events
  (`alert.delivery_failed` ...), state changes and escalation commit together with it.

The engine records outcomes in batches: one transaction settles many records and calls
`on_outcomes` once with all of them. Where a round records and claims nothing else, a plan
may instead give the writes of `on_outcomes` to the settling statement (`carry_settled`,
PostgreSQL), each conditioned on its record being settled, sent without BEGIN.
`BaseDeliveryPlan.on_outcomes` calls the hook of each outcome in turn; a plan that can
write a whole batch in fewer statements (one INSERT of its timeline rows) overrides it,
with the same meaning as the single hooks.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, assert_never

from sqlalchemy.ext.asyncio import AsyncSession

from schemas.deliveries import DeliveryChannel
from services.common.delivery.records import Delivered, DeliveryOrder, DeliveryRecord, Failure
from services.common.delivery.registry import Outbound, Skip
from services.common.delivery.settle_query import SettleCarry, SettleRead
from services.common.delivery.store import Transaction

__all__ = ["BaseDeliveryPlan", "DeliveryPlan", "Resolution", "Settled"]

# What a plan makes of one record: the message, nothing to send, or why it cannot be sent
# (a DeliveryError with its reason class; any other exception is a bug, logged).
Resolution = Outbound | Skip | Exception


@dataclass(frozen=True)
class Settled:
    """One record's outcome as the plan's hooks see it (already written to the record)."""

    record: DeliveryRecord
    result: Delivered | Failure | Skip


class DeliveryPlan(Protocol):
    """A service's side of delivery (see the module docstring)."""

    # Channels this service delivers on: the engine refuses to start without a sender
    # for each (`SenderRegistry.require`).
    channels: Collection[DeliveryChannel]
    # A read of the batch's aggregates for `on_outcomes`, carried by the settling
    # statement on PostgreSQL (`SettleRead`); None: the plan reads for itself.
    settle_read: SettleRead | None

    def give_up_after(self, order: DeliveryOrder) -> timedelta:
        """How long after acceptance retries may go on, for this order's purpose."""
        ...

    async def resolve(self, session: AsyncSession, record: DeliveryRecord) -> Outbound | Skip:
        """The message for `record` (address and rendered text), or Skip if none is wanted.

        A missing address is `raise DeliveryError(..., reason="no_address")`.
        """
        ...

    async def resolve_all(
        self, session: AsyncSession, records: Sequence[DeliveryRecord]
    ) -> list[Resolution]:
        """`resolve` for each of `records`, in their order, with exceptions as values."""
        ...

    async def on_delivered(
        self, tx: Transaction, record: DeliveryRecord, result: Delivered
    ) -> None:
        """The receiver accepted it (record: delivered)."""
        ...

    async def on_attempt_failed(
        self, tx: Transaction, record: DeliveryRecord, failure: Failure
    ) -> None:
        """An attempt failed; another follows at `failure.retry_at`."""
        ...

    async def on_failed(self, tx: Transaction, record: DeliveryRecord, failure: Failure) -> None:
        """No more attempts: permanent refusal or give-up time reached (record: failed)."""
        ...

    async def on_skipped(self, tx: Transaction, record: DeliveryRecord, skip: Skip) -> None:
        """`resolve` said nothing is to be sent (record: skipped)."""
        ...

    async def on_outcomes(self, tx: Transaction, outcomes: Sequence[Settled]) -> None:
        """Every outcome the transaction records, in one call (in delivery-id order)."""
        ...

    async def carry_settled(
        self, tx: Transaction, outcomes: Sequence[Settled]
    ) -> SettleCarry | None:
        """`on_outcomes`' writes for `outcomes` (none of them settled yet, some perhaps
        no longer ours), to be carried by the settling statement and committed with it
        (`SettleCarry`: each write only for a record the statement settles); None: the
        batch takes `on_outcomes` in a transaction. Asked only where the round sends
        nothing else: `tx` has sent nothing yet, and may send reads, not writes."""
        ...


class BaseDeliveryPlan:
    """Hooks that do nothing, and one give-up time for every purpose; override what you need."""

    channels: Collection[DeliveryChannel] = ("webhook", "email")
    default_give_up_after = timedelta(hours=2)
    settle_read: SettleRead | None = None

    def give_up_after(self, order: DeliveryOrder) -> timedelta:
        """The same deadline for every purpose."""
        return self.default_give_up_after

    async def resolve(self, session: AsyncSession, record: DeliveryRecord) -> Outbound | Skip:
        """Subclasses must say what to send."""
        raise NotImplementedError

    async def resolve_all(
        self, session: AsyncSession, records: Sequence[DeliveryRecord]
    ) -> list[Resolution]:
        """`resolve` one record after the other (override to read a batch at once)."""
        resolved: list[Resolution] = []
        for record in records:
            try:
                resolved.append(await self.resolve(session, record))
            except Exception as exc:  # reported per record by the engine
                resolved.append(exc)
        return resolved

    async def on_delivered(
        self, tx: Transaction, record: DeliveryRecord, result: Delivered
    ) -> None:
        """Nothing to record."""

    async def on_attempt_failed(
        self, tx: Transaction, record: DeliveryRecord, failure: Failure
    ) -> None:
        """Nothing to record."""

    async def on_failed(self, tx: Transaction, record: DeliveryRecord, failure: Failure) -> None:
        """Nothing to record."""

    async def on_skipped(self, tx: Transaction, record: DeliveryRecord, skip: Skip) -> None:
        """Nothing to record."""

    async def carry_settled(
        self, tx: Transaction, outcomes: Sequence[Settled]
    ) -> SettleCarry | None:
        """Nothing carried: the hooks run in the settling transaction."""
        return None

    async def on_outcomes(self, tx: Transaction, outcomes: Sequence[Settled]) -> None:
        """Each outcome's own hook, one after the other."""
        for outcome in outcomes:
            record, result = outcome.record, outcome.result
            match result:
                case Delivered():
                    await self.on_delivered(tx, record, result)
                case Failure(final=True):
                    await self.on_failed(tx, record, result)
                case Failure():
                    await self.on_attempt_failed(tx, record, result)
                case Skip():
                    await self.on_skipped(tx, record, result)
                case _:
                    assert_never(result)
