"""Recording outcomes: the records' new state and the plan's hooks, in one transaction.

Outcomes that arrive together are recorded in one transaction: two statements settle the
whole batch (`settle_many`) and the plan's `on_outcomes` gets all of it, so the cost of a
commit is shared by every outcome in it. The engine's round takes the queued batch
(`take`) and writes it (`write`) in the transaction that also claims the next records.
A round that claims nothing may instead let the plan carry its writes in the settling
statement (`DeliveryPlan.carry_settled`, PostgreSQL): one statement without BEGIN, each
of the plan's writes only for a record it settles. If the round fails, each outcome is
recorded on its own; one whose hook keeps failing is still recorded without its hook (and
logged), so a bug in a service's hook cannot make the engine send a message again and again.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import assert_never

from services.common.delivery.direct_rounds import settle_carried
from services.common.delivery.errors import PERMANENT_REASONS, ReasonClass
from services.common.delivery.metrics import (
    BREAKER_OPENED,
    DELIVERY_OUTCOMES,
    SEND_SECONDS,
)
from services.common.delivery.plan import DeliveryPlan, Settled
from services.common.delivery.policy import retry_time
from services.common.delivery.records import Delivered, DeliveryRecord, Failure
from services.common.delivery.registry import Skip
from services.common.delivery.store import DeliveryStore, Settlement, Transaction
from services.common.logging import get_logger

__all__ = [
    "Busy",
    "Outcome",
    "OutcomeRecorder",
    "Result",
    "due_again",
    "failure_outcome",
    "final",
    "final_failure",
]

log = get_logger(__name__)

# Outcomes per transaction: a full engine's worth (max_in_flight) and its busy put-backs.
_BATCH = 256


@dataclass(frozen=True)
class Busy:
    """Not tried: the destination already has its share in flight; claimable at `retry_at`."""

    retry_at: datetime


Result = Delivered | Failure | Skip | Busy


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed record this round."""

    record: DeliveryRecord
    result: Result
    at: datetime
    attempted: bool = False  # the network was used
    destination_key: str | None = None
    send_seconds: float | None = None
    breaker_opened: bool = False


def failure_outcome(
    record: DeliveryRecord,
    reason: ReasonClass,
    now: datetime,
    *,
    key: str | None,
    attempted: bool,
    permanent: bool | None,
    retry_base_s: float,
    retry_max_s: float,
    reopens: datetime | None,
    rng: random.Random,
) -> Outcome:
    """A failed (or impossible) attempt: retried with backoff before give_up_at (after the
    destination's breaker `reopens`, if later), else final."""
    permanent = reason in PERMANENT_REASONS if permanent is None else permanent
    attempts = record.attempts + (1 if attempted else 0)
    retry_at = None
    if not permanent:
        retry_at = retry_time(
            attempts=attempts, now=now, give_up_at=record.give_up_at, base_s=retry_base_s,
            max_s=retry_max_s, reopens=reopens, rng=rng,
        )  # fmt: skip
    failure = Failure(
        reason=reason,
        permanent=permanent,
        final=retry_at is None,
        attempts=attempts,
        at=now,
        retry_at=retry_at,
        destination_key=key,
    )
    return Outcome(record=record, result=failure, at=now, attempted=attempted, destination_key=key)


def final(outcome: Outcome) -> bool:
    """Whether `outcome` ends its record (delivered, failed for good, skipped); a retry or
    a busy put-back makes it due again."""
    match outcome.result:
        case Delivered() | Skip() | Failure(final=True):
            return True
        case Failure() | Busy():
            return False
        case _:
            assert_never(outcome.result)


def final_failure(outcome: Outcome) -> bool:
    """Whether `outcome` is a failure with no more attempts."""
    return isinstance(outcome.result, Failure) and outcome.result.final


def due_again(outcome: Outcome) -> datetime | None:
    """When a retried or put-back record is due again (None: `outcome` ends it)."""
    result = outcome.result
    if isinstance(result, Busy | Failure):
        return result.retry_at
    return None


def settlement(outcome: Outcome) -> Settlement:
    """The record's new row state for `outcome`."""
    base = Settlement(
        delivery_id=outcome.record.delivery_id,
        state="pending",
        at=outcome.at,
        attempted=outcome.attempted,
        destination_key=outcome.destination_key,
    )
    result = outcome.result
    match result:
        case Delivered():
            return replace(base, state="delivered", segments=result.segments)
        case Failure(final=True):
            return replace(base, state="failed", error_class=result.reason)
        case Failure():
            # sending -> pending, due again at the retry time
            return replace(base, next_attempt_at=result.retry_at, error_class=result.reason)
        case Skip():
            return replace(base, state="skipped")
        case Busy():
            record = outcome.record
            return replace(
                base,
                next_attempt_at=result.retry_at,
                share_with=(record.recipient_id, record.channel),
            )
        case _:
            assert_never(result)


def _settled(outcome: Outcome) -> Settled | None:
    """What the plan hears of `outcome` (nothing for a busy put-back: not an attempt)."""
    result = outcome.result
    if isinstance(result, Busy):
        return None
    return Settled(outcome.record, result)


class OutcomeRecorder:
    """Queues outcomes and records them in batches; tells the engine which are settled."""

    def __init__(
        self,
        *,
        store: DeliveryStore,
        plan: DeliveryPlan,
        owner: str,
        service: str,
        released: Callable[[Sequence[uuid.UUID]], None],
        settling: Callable[[Sequence[uuid.UUID]], None] | None = None,
        outcome_lines: bool = True,
    ) -> None:
        self._store = store
        self._plan = plan
        self._owner = owner
        self._service = service
        self._released = released
        self._settling = settling
        self._outcome_lines = outcome_lines  # see `EngineConfig.outcome_lines`
        self._queue: list[Outcome] = []
        self._since: float | None = None  # monotonic time the oldest queued was queued
        self.taken_at = float("-inf")  # monotonic time of the last batch taken
        self._lock = asyncio.Lock()

    @property
    def waiting(self) -> int:
        """Outcomes queued and not yet taken."""
        return len(self._queue)

    @property
    def waiting_since(self) -> float | None:
        """When (`time.monotonic`) the oldest outcome still queued was queued; None: none."""
        return self._since

    def waiting_for(self) -> set[uuid.UUID]:
        """The requests (alerts, bulletins) whose queued outcomes wait to be recorded."""
        return {outcome.record.aggregate_id for outcome in self._queue}

    def queue(self, outcomes: Sequence[Outcome]) -> None:
        """Queue outcomes for the engine's next round (`take`), or for `flush`."""
        if outcomes and not self._queue:
            self._since = time.monotonic()
        self._queue.extend(outcomes)

    def take(self) -> list[Outcome]:
        """The next batch to settle in the caller's transaction (`write`; then `done`)."""
        batch = self._queue[:_BATCH]
        del self._queue[:_BATCH]
        if batch:
            self.taken_at = time.monotonic()
        if not self._queue:
            self._since = None  # what is left over a full batch keeps its age
        if batch and self._settling is not None:
            self._settling([o.record.delivery_id for o in batch])
        return batch

    async def flush(self) -> None:
        """Record everything queued, in transactions of its own (tests, and on stop)."""
        async with self._lock:
            while self._queue:
                await self._record(self.take())

    async def write(
        self, tx: Transaction, batch: Sequence[Outcome], *, hooks: bool = True, alone: bool = False
    ) -> None:
        """Settle `batch` and call the plan's hooks in `tx`; logs and metrics after commit.

        `alone`: nothing else is written in `tx`; then the plan may carry its writes in
        the settling statement, sent without BEGIN (`DeliveryPlan.carry_settled`)."""
        # One order for every batch: two transactions never wait on each other's rows.
        ordered = sorted(batch, key=lambda o: str(o.record.delivery_id))
        settlements = [settlement(o) for o in ordered]
        if hooks and alone and await self._write_carried(tx, ordered, settlements):
            return
        read = self._plan.settle_read if hooks else None
        # A busy put-back is not the plan's to hear of: nothing to read for it.
        heard = [
            o
            for o in ordered
            if _settled(o) and (read is None or read.finals or not final_failure(o))
        ]
        ids = tuple(sorted({str(o.record.aggregate_id) for o in heard}))
        if read is None or not ids:
            held = await self._store.settle_many(tx, owner=self._owner, settlements=settlements)
        else:
            # The plan's read of the batch's aggregates rides in the settling statement.
            held = await self._store.settle_many(
                tx, owner=self._owner, settlements=settlements, read=replace(read, ids=ids)
            )
        # A record missing from `held`: our lease ran out and another process took it
        # over; its outcome is the one that counts.
        kept = [o for o in ordered if o.record.delivery_id in held]
        if hooks:
            settled = [_settled(o) for o in kept]
            await self._plan.on_outcomes(tx, [s for s in settled if s is not None])
        self._after_commit(tx, ordered, held)

    async def _write_carried(
        self, tx: Transaction, ordered: Sequence[Outcome], settlements: Sequence[Settlement]
    ) -> bool:
        """Settle `ordered` with the plan's writes in one statement, if the plan carries
        them (PostgreSQL; no busy put-back in the batch); False: nothing was written."""
        settled = [_settled(o) for o in ordered]
        if any(s is None for s in settled):
            return False  # a busy put-back shares its destination: a statement of its own
        carry = await self._plan.carry_settled(tx, [s for s in settled if s is not None])
        if carry is None:
            return False
        held = await settle_carried(
            tx.session, owner=self._owner, settlements=settlements, carry=carry
        )
        self._after_commit(tx, ordered, held)
        return True

    def _after_commit(
        self, tx: Transaction, ordered: Sequence[Outcome], held: set[uuid.UUID]
    ) -> None:
        kept = [o for o in ordered if o.record.delivery_id in held]
        lost = [o.record for o in ordered if o.record.delivery_id not in held]
        tx.after_commit(lambda: self._committed(kept, lost))

    async def recover(self, batch: Sequence[Outcome]) -> None:
        """The transaction that was to record `batch` failed: each outcome on its own."""
        for outcome in batch:
            await self._record_alone(outcome)

    def done(self, batch: Sequence[Outcome]) -> None:
        """`batch` is recorded (or left to its lease): the engine frees its claims."""
        if batch:
            self._released([o.record.delivery_id for o in batch])

    async def _record(self, batch: list[Outcome]) -> None:
        try:
            try:
                await self._commit(batch, hooks=True)
            except Exception:
                if len(batch) == 1:
                    raise
                await self.recover(batch)
        except Exception:
            await self._record_alone(batch[0], retry_with_hooks=False)
        finally:
            self.done(batch)

    async def _record_alone(self, outcome: Outcome, *, retry_with_hooks: bool = True) -> None:
        if retry_with_hooks:
            try:
                await self._commit([outcome], hooks=True)
                return
            except Exception:  # noqa: S110 - logged just below, once
                pass
        log.exception(
            "delivery.hook_failed",
            service=self._service,
            delivery_id=str(outcome.record.delivery_id),
            channel=outcome.record.channel,
        )
        try:
            await self._commit([outcome], hooks=False)
        except Exception as exc:
            # The database is away: the lease lapses and the record is tried again.
            log.error(
                "delivery.record_failed",
                service=self._service,
                delivery_id=str(outcome.record.delivery_id),
                error=type(exc).__name__,
            )

    async def _commit(self, batch: Sequence[Outcome], *, hooks: bool) -> None:
        async with self._store.transaction() as tx:
            await self.write(tx, batch, hooks=hooks, alone=True)
            await tx.commit()

    def _committed(self, kept: Sequence[Outcome], lost: Sequence[DeliveryRecord]) -> None:
        for record in lost:
            self._lease_lost(record)
        for outcome in kept:
            self._observe(outcome)

    def _lease_lost(self, record: DeliveryRecord) -> None:
        # Sent while another process held the record (our heartbeat fell behind): the
        # receiver may get it twice, with the same delivery id to drop the second.
        log.warning(
            "delivery.lease_lost", service=self._service, delivery_id=str(record.delivery_id)
        )

    def _observe(self, outcome: Outcome) -> None:
        """Metrics and the log line, after commit."""
        record, result = outcome.record, outcome.result
        fields = {
            "service": self._service,
            "delivery_id": str(record.delivery_id),
            "aggregate_id": str(record.aggregate_id),
            "recipient_id": str(record.recipient_id),
            "channel": record.channel,
            "purpose": record.purpose,
        }
        if outcome.send_seconds is not None:
            SEND_SECONDS.labels(self._service, record.channel).observe(outcome.send_seconds)
        if outcome.breaker_opened:
            BREAKER_OPENED.labels(self._service, record.channel).inc()
            log.warning("delivery.breaker_opened", **fields, destination=outcome.destination_key)
        counter = DELIVERY_OUTCOMES
        match result:
            case Delivered():
                counter.labels(self._service, record.channel, "delivered", "none").inc()
                if self._outcome_lines:
                    log.info("delivery.delivered", **fields, attempts=result.attempts)
            case Failure(final=True):
                counter.labels(self._service, record.channel, "failed", result.reason).inc()
                log.error(
                    "delivery.failed", **fields, reason=result.reason, attempts=result.attempts
                )
            case Failure():
                counter.labels(self._service, record.channel, "retrying", result.reason).inc()
                log.warning(
                    "delivery.attempt_failed",
                    **fields,
                    reason=result.reason,
                    attempts=result.attempts,
                    retry_at=result.retry_at.isoformat() if result.retry_at else None,
                )
            case Skip():
                counter.labels(self._service, record.channel, "skipped", "none").inc()
                if self._outcome_lines:
                    log.info("delivery.skipped", **fields, skip_reason=result.reason)
            case Busy():
                pass
            case _:
                assert_never(result)
