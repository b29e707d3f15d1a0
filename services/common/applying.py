"""Applying consumed messages: alone with retries, or several in one transaction.

`Applier` is the consumer's (consuming.py) second half: what it does with a message once
parsed and routed (`ReadyMessage`).

- Alone: the inbox claim and the handler in one transaction; a failure is retried K times
  with exponential backoff, each try in a fresh transaction; then the message is
  dead-lettered. A database outage is waited out without spending tries.
- Alone, carried (PostgreSQL, a route with a `ClaimCarrier`, the first try): the handler
  is handed the inbox claim to write in its own one statement, sent without BEGIN so it
  commits as it answers: one round trip instead of BEGIN, claim, effect, COMMIT. A
  carrier that could not (it wrote nothing) leaves the message to the path above, in
  the same try; a retry always takes that path.
- In a batch: one inbox INSERT for every message (one already recorded, or twice in the
  batch, is skipped), each handler in turn on the same unit of work, one COMMIT. If
  anything fails the transaction rolls back and the messages are applied alone, in
  order; the batch counts as the first try of the message whose handler raised (alone
  it would have raised the same: the messages before it are applied first either way).
- A batch's leading run, carried (PostgreSQL, a route with a `RunCarrier`): the messages
  of that route at the batch's head are handed with their inbox claims to the route's
  carrier, whose statements go without BEGIN, pipelined up to one Sync: PostgreSQL runs
  them as one implicit transaction, committed as it answers (one round trip instead of
  BEGIN, claim, effects, COMMIT), or rolled back whole if any fails (the batch then
  fails as one whose handler raised nowhere). What it could not apply (it wrote neither
  effect nor claim: a duplicate, an effect its statement does not cover) is applied as
  usual with the rest of the batch, after the run's.
- A run in a batch (PostgreSQL or SQLite; a route with a `RunPreparer`): consecutive new
  messages of that route are prepared together first (one statement with arrays for all
  of them, or one statement's executions pipelined in one round trip, instead of one
  round trip each), then each is finished by the handler the preparer returned, in
  order and in its own scope, as the route's handler would apply it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import takewhile
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.base import EventData
from services.common.cloudevents import Envelope, correlation_scope
from services.common.db import UnitOfWork
from services.common.direct import asyncpg_unreachable, is_postgres_session
from services.common.inbox import Claim, claim_message, claim_messages
from services.common.logging import bound, get_logger, scrub_text
from services.common.metrics import CONSUMER_PROCESSED

__all__ = [
    "Applier",
    "ClaimCarrier",
    "DeadLetter",
    "Handler",
    "ReadyMessage",
    "Route",
    "RunCarrier",
    "RunPreparer",
    "database_unreachable",
]

log = get_logger(__name__)

# A handler applies one event inside the consumer's unit of work and never commits it:
# the consumer commits (with the inbox row) after the handler returned. In a batch the
# unit of work also holds the batch's other messages, applied before and after it.
Handler = Callable[[Envelope[Any], UnitOfWork], Awaitable[None]]

# A handler's opt-in to carry the inbox claim itself (PostgreSQL only): given the fresh
# unit of work and the claim, it either applies the event with the claim in ONE statement
# that commits by itself, and answers True (its only write; the consumer then commits the
# unit of work, which sends nothing and runs its after-commit effects), or writes nothing
# at all and answers False (the claim went in before, or its one statement does not
# apply). Its statement must write the effect only if the claim was not recorded yet,
# and the claim only with the effect, so a redelivered message changes nothing.
ClaimCarrier = Callable[[Envelope[Any], UnitOfWork, Claim], Awaitable[bool]]

# A handler's opt-in to apply a run of its messages in a batch with fewer statements:
# given the run's events (new ones, in the batch's order) and the batch's unit of work, it
# does what they share at once (one statement with arrays, say) and returns the handler
# that finishes each; that one is called for each event in turn, in the event's scope,
# and must leave what the route's own handler would have left had it applied the run
# one by one. It writes in the batch's transaction and never commits.
RunPreparer = Callable[[Sequence[Envelope[Any]], UnitOfWork], Awaitable[Handler]]

# A handler's opt-in to carry the inbox claims of a batch's leading run of its messages
# (PostgreSQL only): given the run's events, their claims (in the same order) and a fresh
# unit of work, it writes each event it can with its claim, in statements sent without
# BEGIN and pipelined up to one Sync, so that all it sends is one transaction PostgreSQL
# commits as it answers or rolls back whole; it answers, per event, the handler that
# finishes it (its after-commit effects: no statement), or None where it wrote neither
# the effect nor the claim (the consumer then applies that event as usual, after the
# run). As a `ClaimCarrier`'s, its statements write an effect only if its claim was not
# recorded yet, and a claim only with its effect, so a redelivered message changes nothing.
RunCarrier = Callable[
    [Sequence[Envelope[Any]], Sequence[Claim], UnitOfWork], Awaitable[list[Handler | None]]
]


@dataclass
class Route:
    """Where a group's event type goes: its handler, the inbox name it is recorded under,
    the handler's way to carry the inbox claim in its own statement, its way to apply a
    run of its messages in a batch together, and its way to carry a run's claims, if it
    has them."""

    handler: Handler
    inbox: str
    carrier: ClaimCarrier | None = None
    prepare_run: RunPreparer | None = None
    carry_run: RunCarrier | None = None


@dataclass(frozen=True)
class ReadyMessage:
    """A record parsed and routed to its handler: what applying it needs."""

    record: Any  # aiokafka's ConsumerRecord
    headers: dict[str, str]
    message_id: str
    envelope: Envelope[EventData]
    route: Route
    group_id: str

    @property
    def claim(self) -> Claim:
        return Claim(self.route.inbox, self.envelope.id, self.record.topic)

    @contextmanager
    def scope(self) -> Iterator[None]:
        """The message's log fields and correlation id, as while it is applied."""
        with (
            bound(message_id=self.message_id, topic=self.record.topic, group_id=self.group_id),
            correlation_scope(self.envelope.correlation_id),
            bound(correlation_id=self.envelope.correlation_id, event_type=self.envelope.type),
        ):
            yield


@contextmanager
def _effects_in_scope(uow: UnitOfWork, item: ReadyMessage) -> Iterator[None]:
    """The after-commit effects the block registers run in `item`'s scope at commit.

    A batch commits after its last handler, outside every message's scope; the effects
    (log lines, metrics, wake-ups) run in registration order, so bracketing each
    message's own with entering and leaving its scope keeps their log fields as a lone
    message's.
    """
    stack = ExitStack()

    def enter() -> None:
        stack.enter_context(item.scope())

    uow.after_commit(enter)
    try:
        yield
    finally:
        uow.after_commit(stack.close)


def _runs(fresh: list[tuple[int, ReadyMessage]]) -> Iterator[list[tuple[int, ReadyMessage]]]:
    """`fresh` (index, message) cut into runs: consecutive messages of one route that
    prepares its runs together; any other message is a run of its own."""
    run: list[tuple[int, ReadyMessage]] = []
    for entry in fresh:
        route = entry[1].route
        if run and (route.prepare_run is None or route is not run[-1][1].route):
            yield run
            run = []
        run.append(entry)
    if run:
        yield run


async def _run_handler(run: list[tuple[int, ReadyMessage]], uow: UnitOfWork) -> Handler:
    """What finishes each message of `run`: its route's handler, or, for a route that
    prepares its runs, the handler its preparer returned once it did their shared work.
    A preparer that raises fails the batch with no message charged (it is no handler's
    try), and every message is then applied alone."""
    route = run[0][1].route
    if route.prepare_run is None:
        return route.handler
    return await route.prepare_run([item.envelope for _, item in run], uow)


# Dead-letters a message that failed its last try: (message, error, tries).
DeadLetter = Callable[["ReadyMessage", BaseException, int], Awaitable[None]]


async def _effects_first() -> None:
    """Two loop turns for what a lone message's commit started, before this consumer's tail.

    A commit's after-commit effects may spawn tasks (router's: the delivery engine's
    sends), whose first step spawns the task that writes the request (aiohttp's). Left
    to the loop, both waited behind the rest of this task: the unit of work's close, the
    offsets, FastStream's end of the message (~0.3 ms at 10/s, docs/performance.md). A
    lone message only (a batch's messages are many, and a rate where that tail shows).
    """
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def database_unreachable(exc: BaseException) -> bool:
    """True when `exc` means the database could not be reached (not a bug in the handler).

    Follows explicit causes and unsuppressed contexts only, so an error that a sender
    re-raised `from None` (a webhook or SMTP failure) is judged as itself.
    """
    import sqlalchemy.exc

    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sqlalchemy.exc.OperationalError):
            orig = current.orig
            if orig is not None and type(orig).__module__.startswith(("sqlite3", "aiosqlite")):
                # On SQLite this class also means "no such table": only a lock or a
                # file that cannot be opened is an outage.
                text = str(orig).lower()
                return "locked" in text or "unable to open" in text
            return True
        if isinstance(current, sqlalchemy.exc.InterfaceError | sqlalchemy.exc.TimeoutError):
            return True
        if isinstance(current, ConnectionError | TimeoutError) or asyncpg_unreachable(current):
            return True
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return False


class Applier:
    """Applies ready messages of one service's consumer, alone or in batches."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        service: str,
        max_attempts: int,
        backoff_s: float,
        dead_letter: DeadLetter,
    ) -> None:
        self._sessions = sessions
        self._service = service
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._dead_letter = dead_letter
        self.processed_total = 0
        self.batches_total = 0  # transactions that applied more than one message

    async def apply_batch(self, items: list[ReadyMessage]) -> list[Exception]:
        """Apply `items` in one transaction (a leading run carried in one of its own
        first); if it fails, one at a time. The errors of messages that could not even be
        dead-lettered."""
        try:
            left = await self._carry_leading_run(items)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Rolled back whole, no handler's try: as a failed preparer, each alone.
            return await self._one_by_one(items, None, exc)
        if not left:
            return []
        tried = await self._try_batch(left)
        if tried is None:
            return []
        failed_at, error = tried
        return await self._one_by_one(left, failed_at, error)

    async def _carry_leading_run(self, items: list[ReadyMessage]) -> list[ReadyMessage]:
        """The batch's leading run of a route that carries its runs' claims (PostgreSQL),
        applied and committed by its carrier's statements; what is left to apply, in order:
        the run's messages it did not apply, then the rest of the batch.

        The run's applied messages commit before those it left, which are then applied
        in their order: a left one is a duplicate or one its carrier's statement does not
        cover, and each of the run's events stands for itself (route by route, the
        carrier says so by carrying).
        """
        route = items[0].route
        carry = route.carry_run
        if carry is None:
            return items
        run = list(takewhile(lambda item: item.route is route, items))
        applied: list[ReadyMessage] = []
        left: list[ReadyMessage] = []
        async with UnitOfWork(self._sessions) as uow:
            if not is_postgres_session(uow.session):
                return items
            now = datetime.now(UTC)  # the claims' stamp, as the usual claim's: the try's start
            finishers = await carry(
                [item.envelope for item in run], [item.claim._replace(at=now) for item in run], uow
            )
            for item, finish in zip(run, finishers, strict=True):
                if finish is None:
                    left.append(item)
                    continue
                with item.scope(), _effects_in_scope(uow, item):
                    await finish(item.envelope, uow)
                applied.append(item)
            # Committed by the carrier's statements: this sends nothing and runs the
            # after-commit effects they and the finishers registered.
            await uow.commit()
        for item in applied:
            CONSUMER_PROCESSED.labels(self._service, item.group_id).inc()
        self.processed_total += len(applied)
        if len(applied) > 1:
            self.batches_total += 1
        return left + items[len(run) :]

    async def _one_by_one(
        self, items: list[ReadyMessage], failed_at: int | None, error: Exception
    ) -> list[Exception]:
        """`items` applied alone, in order, after their batch failed with `error` (raised
        by the handler of `items[failed_at]`, whose first try it was; None: no handler's)."""
        log.warning(
            "consumer.batch_failed",
            size=len(items),
            failed_message_id=items[failed_at].message_id if failed_at is not None else None,
            error_type=type(error).__name__,
        )
        errors: list[Exception] = []
        for index, item in enumerate(items):
            try:
                await self.apply(item, failed=error if index == failed_at else None)
            except Exception as exc:
                errors.append(exc)
        return errors

    async def _try_batch(self, items: list[ReadyMessage]) -> tuple[int | None, Exception] | None:
        """Apply `items` in one transaction: None once committed, else (the index of the
        message whose handler raised, None when no handler did; the error)."""
        running: int | None = None
        applied: list[ReadyMessage] = []
        duplicates: list[ReadyMessage] = []
        try:
            async with UnitOfWork(self._sessions) as uow:
                new = await claim_messages(uow.session, [item.claim for item in items])
                fresh: list[tuple[int, ReadyMessage]] = []
                for index, item in enumerate(items):
                    key = (item.route.inbox, item.envelope.id)
                    if key not in new:
                        duplicates.append(item)
                        continue
                    new.discard(key)  # a second copy in this batch is a duplicate
                    fresh.append((index, item))
                for run in _runs(fresh):
                    handler = await _run_handler(run, uow)
                    for index, item in run:
                        running = index
                        with item.scope(), _effects_in_scope(uow, item):
                            await handler(item.envelope, uow)
                        running = None
                        applied.append(item)
                await uow.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # An outage counts as no try: `apply` waits it out whoever it is charged to.
            return running, exc
        for item in duplicates:
            with item.scope():
                log.info("consumer.duplicate_skipped")
        for item in applied:
            CONSUMER_PROCESSED.labels(self._service, item.group_id).inc()
        self.processed_total += len(applied)
        self.batches_total += 1
        log.debug("consumer.batch_applied", size=len(items), applied=len(applied))
        return None

    async def apply(self, item: ReadyMessage, *, failed: Exception | None = None) -> None:
        """Apply one message in its own transaction, retrying with backoff, then dead-letter
        it; `failed`: its first try failed already (in a batch) with this error."""
        attempt, error = (1, failed) if failed is not None else (0, None)
        outage_delay = self._backoff_s
        with item.scope():
            while True:
                if error is None:
                    attempt += 1
                    try:
                        # Carried only on a first try (an outage's is one again): a
                        # retry takes the usual path, as every try did before.
                        await self._apply_once(item, carry=attempt == 1)
                        return
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        error = exc
                if database_unreachable(error):
                    # An outage is not this message's fault: wait it out without spending
                    # attempts, holding the partition (the offset stays uncommitted), so
                    # nothing lands in the DLQ because PostgreSQL restarted.
                    attempt -= 1
                    outage_delay = min(max(outage_delay * 2, 0.1), 5.0)
                    log.warning(
                        "consumer.database_unreachable",
                        retry_in_s=outage_delay,
                        error_type=type(error).__name__,
                    )
                    await asyncio.sleep(outage_delay)
                elif attempt >= self._max_attempts:
                    await self._dead_letter(item, error, attempt)
                    return
                else:
                    delay = self._backoff_s * (2 ** (attempt - 1))
                    log.warning(
                        "consumer.retrying",
                        attempt=attempt,
                        max_attempts=self._max_attempts,
                        delay_s=delay,
                        error_type=type(error).__name__,
                        error=scrub_text(str(error)),
                    )
                    await asyncio.sleep(delay)
                error = None

    async def _apply_once(self, item: ReadyMessage, *, carry: bool = False) -> None:
        """One try: the inbox claim and the handler in one transaction, committed; or, when
        `carry` and the route's carrier can, both in the handler's one statement."""
        async with UnitOfWork(self._sessions) as uow:
            carrier = item.route.carrier
            if (
                carry
                and carrier is not None
                and is_postgres_session(uow.session)
                # Stamped now, as the usual claim is stamped at the try's start.
                and await carrier(item.envelope, uow, item.claim._replace(at=datetime.now(UTC)))
            ):
                # Applied and committed by its statement: the commit sends nothing and
                # runs the after-commit effects it registered, as below.
                await uow.commit()
                self._processed(item)
                await _effects_first()
                return
            first_time = await claim_message(
                uow.session,
                consumer=item.route.inbox,
                message_id=item.envelope.id,
                topic=item.record.topic,
            )
            if not first_time:
                log.info("consumer.duplicate_skipped")
                return
            await item.route.handler(item.envelope, uow)
            await uow.commit()
        self._processed(item)

    def _processed(self, item: ReadyMessage) -> None:
        self.processed_total += 1
        CONSUMER_PROCESSED.labels(self._service, item.group_id).inc()
