"""The dispatcher: claim due records, resolve, send outside any transaction, record.

One round: claim as many due records as there are free slots (a lease renewed by a
heartbeat while sends are in flight) and, in the same short transaction, ask the plan what
to send for the whole batch (`resolve_all`); send each message concurrently with no
database transaction open, then record the outcomes in batches (one transaction settles
many records and calls the plan's hooks for all of them). While sends are under way, a
claim waits until an eighth of `max_in_flight` is free: fewer, larger transactions.
Orders accepted while slots are free skip the claim: they are handed off (`handoff`).
A round that only records final outcomes claims nothing until something may be due.

A record is sent only while its claim is ours: the heartbeat drops a record another
process took over (its lease ran out while this one fell behind), and a round that took
longer than a heartbeat to resolve confirms its claims before it sends (`claims`).

Bounded per process (`max_in_flight`) and per destination: each destination's limit
starts at `per_destination`, grows while it answers quickly and successfully (up to
`per_destination_max`) and halves on a timeout, 5xx or connection error
(`policy.DestinationLimits`), so a slow or dead endpoint holds only a slot or two and a
healthy one gets throughput. A claim takes of each known destination only as many records
as it has free slots: no claimed record waits for a slot (its lease could lapse while it
waited). A record whose destination was not known when it was claimed and turns out to be
busy is put back at once, with its destination now known, for a later claim to take when
a slot is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from schemas.deliveries import DeliveryChannel
from services.common.db import after_commit
from services.common.delivery.accepting import PreparedAccept, prepare
from services.common.delivery.admission import Admission, Send
from services.common.delivery.claims import Claims
from services.common.delivery.config import EngineConfig, destination_secret
from services.common.delivery.handoff import HandOff, release
from services.common.delivery.lookout import Lookout, Round
from services.common.delivery.outcomes import Outcome, OutcomeRecorder
from services.common.delivery.plan import DeliveryPlan, Resolution
from services.common.delivery.policy import CircuitBreakers, DestinationLimits
from services.common.delivery.records import DeliveryOrder, DeliveryRecord
from services.common.delivery.registry import SenderRegistry, SmsReceipt
from services.common.delivery.signals import Signal, wait_any
from services.common.delivery.store import DeliveryStore, SqlDeliveryStore, Transaction
from services.common.logging import get_logger
from services.common.outbox import watch_commits
from services.common.settings import CommonSettings

__all__ = ["DeliveryEngine", "EngineConfig"]

log = get_logger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DeliveryEngine:
    """Durable, concurrent delivery for one service (see the package docstring)."""

    def __init__(
        self,
        *,
        store: DeliveryStore,
        senders: SenderRegistry,
        plan: DeliveryPlan,
        service: str,
        destination_secret: bytes,
        config: EngineConfig | None = None,
        clock: Clock = _utcnow,
        rng: random.Random | None = None,
        owner_id: str | None = None,
    ) -> None:
        senders.require(plan.channels)  # a channel without a sender fails here, at start-up
        self._store = store
        self._senders = senders
        self._plan = plan
        self._service = service
        self._secret = destination_secret
        self._config = config or EngineConfig()
        self._clock = clock
        self._rng = rng or random.Random()  # jitter, not security
        self.owner_id = owner_id or f"{service}-{uuid.uuid4().hex[:12]}"
        self._breakers = CircuitBreakers(
            failure_threshold=self._config.breaker_failures, cooldown=self._config.breaker_cooldown
        )
        self._limits = DestinationLimits(
            initial=self._config.per_destination, ceiling=self._config.per_destination_max,
            fast_answer=self._config.fast_answer,
        )  # fmt: skip
        # Claimed and not yet settled (renewed by the heartbeat), and sends per destination.
        self._claims = Claims(
            store=store, owner=self.owner_id, service=service, lease=self._config.lease,
            heartbeat=self._config.heartbeat, clock=clock,
        )  # fmt: skip
        self._recorder = OutcomeRecorder(
            store=store, plan=plan, owner=self.owner_id, service=service, released=self._released,
            settling=self._claims.settling, outcome_lines=self._config.outcome_lines,
        )  # fmt: skip
        self._admission = Admission(
            service=service, config=self._config, claims=self._claims, limits=self._limits,
            breakers=self._breakers, destination_key=self.destination_key, rng=self._rng,
        )  # fmt: skip
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = Signal()
        self._sending: Counter[uuid.UUID] = Counter()  # sends in flight per request
        self._orders_waiting = False  # woken from outside: new orders (or due records)
        self._last_claim_at = datetime.min.replace(tzinfo=UTC)
        # Idle, look at most a lease apart: a lease taken after our last look then ends after
        # our next one, which reads when it ends, so a crashed process's records are still
        # taken over when their lease runs out.
        self._idle_poll = min(self._config.idle_poll, self._config.lease)
        self._lookout = Lookout(self._config.poll_interval, self._idle_poll)
        self._heard = Signal()  # a commit that may have made records due (lookout)
        self._stop: asyncio.Event | None = None  # `run`'s, while it dispatches

    @classmethod
    def create(
        cls,
        *,
        sessions: async_sessionmaker[AsyncSession],
        table: sa.Table,
        senders: SenderRegistry,
        plan: DeliveryPlan,
        service: str,
        settings: CommonSettings,
        outcome_lines: bool = True,
    ) -> DeliveryEngine:
        """An engine over `table`, configured from `settings` (and `EngineConfig.outcome_lines`)."""
        return cls(
            store=SqlDeliveryStore(sessions=sessions, table=table),
            senders=senders,
            plan=plan,
            service=service,
            destination_secret=destination_secret(settings),
            config=EngineConfig.from_settings(settings, outcome_lines=outcome_lines),
        )

    # -- what services call -----------------------------------------------------------

    async def accept(self, session: AsyncSession, order: DeliveryOrder) -> bool:
        """Record `order` as pending in the caller's transaction; idempotent on delivery id
        (False when it was known already). The dispatcher wakes when it commits."""
        return await self.accept_many(session, [order]) > 0

    async def accept_many(self, session: AsyncSession, orders: Sequence[DeliveryOrder]) -> int:
        """Record `orders` as pending in the caller's transaction, in one statement per
        1,000; returns how many delivery ids were new (the others are left as they are).
        While this engine runs and has free slots, some are handed off (`handoff`)."""
        if not orders:
            return 0
        prepared = await self.prepare_accept(session, orders)
        accepted, now = prepared.accepted, prepared.now
        new = await self._store.insert_many(session, accepted, now=now, owner=self.owner_id)
        return self._accepted(session, prepared.handing, new)

    async def prepare_accept(
        self, session: AsyncSession, orders: Sequence[DeliveryOrder]
    ) -> PreparedAccept:
        """`accept_many` up to its INSERT, for a caller whose own statement carries it
        (`accepting`: PostgreSQL; then `finish` with the ids that statement returned)."""
        return await prepare(
            session, orders, plan=self._plan, room=self._hand_off_room(), now=self._clock(),
            lease=self._config.lease, owner=self.owner_id, service=self._service,
            done=self._accepted,
        )  # fmt: skip

    def _accepted(self, session: AsyncSession, handing: HandOff, new: Collection[uuid.UUID]) -> int:
        """`new` went in: after the commit, handed-off ones to dispatch, others wake it."""
        handed = handing.inserted(new)
        release(session, service=self._service, count=len(handing.records) - len(handed.records))
        if handed.records:
            after_commit(session, lambda: self._take_over(handed))
        if len(new) > len(handed.records):
            after_commit(session, self.wake)  # the others are pending: a claim takes them
        return len(new)

    def _hand_off_room(self) -> int:
        """Orders this engine may claim at accept (`handoff`): its free slots while it runs."""
        if not (self._config.hand_off and self.dispatching):
            return 0
        limit = self._config.max_in_flight
        return max(0, min(limit - self._claims.unsent, 2 * limit - len(self._claims)))

    def _take_over(self, handed: HandOff) -> None:
        """The accepting transaction committed: its handed-off records go to dispatch
        (stopping: not from here; their lease runs out and a claim takes them)."""
        if not self.dispatching:
            log.info("delivery.hand_off_left", service=self._service, count=len(handed.records))
            return
        self._claims.hold(handed.records, claimed_at=handed.claimed_at)
        # Other hand-offs may have committed meanwhile: never more than max_in_flight.
        room = max(0, self._config.max_in_flight - self._claims.unsent + len(handed.records))
        sending, back, now = handed.records[:room], handed.records[room:], handed.claimed_at
        if back:  # put back, due at once: a claim takes them when slots are free
            self._recorder.queue(self._admission.put_back(back, now))
            self._wake.set()
        if sending:
            self._start(sending, handed)

    def _start(self, records: list[DeliveryRecord], handed: HandOff) -> None:
        """`_dispatch` with no task of its own while the claims need no renewal: each send's
        task is then the first one spawned after the commit (a loop turn sooner)."""
        claimed_at = handed.claimed_at
        if not self._claims.fresh(claimed_at):
            work = self._dispatch(records, handed.resolved, claimed_at=claimed_at)
            self._spawn(work, "delivery-hand-off")
            return
        immediate, sends = self._admission.sort(records, handed.resolved, claimed_at)
        self._send(sends, self._claims.confirm_fresh([s.record.delivery_id for s in sends]))
        self._record_now(immediate)

    async def cancel(
        self,
        session: AsyncSession,
        *,
        aggregate_id: uuid.UUID,
        recipient_id: uuid.UUID | None = None,
        purposes: tuple[str, ...] | None = None,
    ) -> int:
        """pending -> cancelled for an aggregate (e.g. alert acknowledged); returns how many."""
        return await self._store.cancel(
            session, aggregate_id=aggregate_id, now=self._clock(), recipient_id=recipient_id,
            purposes=purposes,
        )  # fmt: skip

    @property
    def dispatching(self) -> bool:
        """Whether `run` dispatches now (orders accepted meanwhile may be handed off)."""
        return self._stop is not None and not self._stop.is_set()

    def wake(self) -> None:
        """Look for due records now."""
        self._orders_waiting = True
        self._wake.set()

    def destination_key(self, channel: DeliveryChannel, address: str) -> str:
        """A keyed hash naming the destination (stored and logged instead of the address)."""
        message = f"{channel}\x00{address.strip()}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    # -- the worker ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch until `stop` is set, then let the sends in flight finish and record them."""
        heartbeat = asyncio.create_task(
            self._claims.heartbeat(), name=f"delivery-hb-{self._service}"
        )
        log.info("delivery.engine_started", service=self._service, owner=self.owner_id)
        self._stop = stop
        # The waits listen to the engine's own signals only (`signals`): stopping wakes them.
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: self._wake.set())
        # This process's orders wake the engine themselves (`accept_many`).
        unwatch = watch_commits(self._heard, elsewhere_only=True)
        try:
            while not stop.is_set():
                self._wake.clear()
                self._heard.clear()  # a commit from now on is heard of after this round
                await self._await_siblings(stop)
                done = await self._guarded_round()
                if (done.claimed and done.claimed == done.limit) or self._recorder.waiting:
                    continue  # there may be more due right now, or outcomes to record
                await self._idle(stop, done)
        finally:
            unwatch()
            stopping.cancel()
            await self._drain()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            log.info("delivery.engine_stopped", service=self._service, owner=self.owner_id)

    async def pump(self) -> int:
        """One full round (claim, resolve, send, record), waiting for every send; for tests."""
        done = await self._round()
        await self._drain()
        return done.claimed

    async def _guarded_round(self) -> Round:
        try:
            return await self._round()
        except Exception as exc:
            # The database is away: log once per round and try again after a poll.
            log.warning("delivery.claim_failed", service=self._service, error=type(exc).__name__)
            self._lookout.forget()
            return Round(claimed=0, limit=0, due=None, looked=False)

    async def _idle(self, stop: asyncio.Event, done: Round) -> None:
        if not done.looked or self._free() <= 0:
            # A finished send or an accepted order wakes us; else look again after a poll.
            await self._wait(stop, self._config.poll_interval.total_seconds())
            return
        wait = self._lookout.seconds_to_look(
            done.due, self._clock(), last_claim_at=self._last_claim_at,
            busy_delay=self._config.busy_delay,
        )  # fmt: skip
        ends = time.monotonic() + wait
        if not await self._wait(stop, wait, heard=True):
            return  # the time came, stopped, or woken
        # A commit heard of: look again a poll interval after the last look at the latest
        # (later commits bring it no nearer, so this wait no longer listens for them).
        self._lookout.heard()
        remaining = ends - time.monotonic()
        if (at := self._lookout.at) is not None:
            remaining = min(remaining, (at - self._clock()).total_seconds())
        await self._wait(stop, remaining)

    async def _await_siblings(self, stop: asyncio.Event) -> None:
        """Hold outcomes so one round records more: up to `sibling_wait` for the same
        requests' sends, and at a steady rate (sends under way, or a round a linger ago) up
        to `linger_s` after the oldest for any outcome. Not while orders wait or busy."""
        siblings_until = time.monotonic() + self._config.sibling_wait.total_seconds()
        while not (self._orders_waiting or stop.is_set()):
            busy = self._claims.unsent > max(1, self._config.max_in_flight // 8)
            since = self._recorder.waiting_since
            if busy or since is None:
                return
            siblings = any(self._sending[a] for a in self._recorder.waiting_for())
            linger = self._config.linger_s  # not after a quiet spell (at 10/s): no gain
            steady = bool(self._sending) or since - self._recorder.taken_at <= linger
            until = max(siblings_until if siblings else 0, since + linger if steady else 0)
            if (remaining := until - time.monotonic()) <= 0:
                return
            self._wake.clear()
            await self._wait(stop, remaining)  # a finished send wakes this

    async def _wait(self, stop: asyncio.Event, timeout: float, *, heard: bool = False) -> bool:
        """Until woken, stopped, or `timeout` seconds passed; with `heard`, also until a
        commit is heard of (`watch_commits`), and True if that alone ended the wait."""
        if timeout <= 0:
            return False
        fired = await wait_any([self._wake, self._heard] if heard else [self._wake], timeout)
        return fired is self._heard and not (self._wake.is_set() or stop.is_set())

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._recorder.flush()
        self._lookout.forget()  # what it recorded may be due again (a retry, a put-back)

    # -- one round ----------------------------------------------------------------------

    async def _round(self) -> Round:
        """In ONE transaction: settle the outcomes waiting, claim what fits (the plan
        resolving it), and when that left slots free, read when the next record is due.
        Then start the sends. A round was three transactions (settle, claim, next due):
        on SQLite each took the database's one write lock and waited for the others."""
        batch = self._recorder.take()
        free = self._free(settling=len(batch))
        now = self._clock()
        look = self._lookout.must_look(batch, now, woken=self._orders_waiting)
        self._orders_waiting = False
        if free <= 0:
            self._lookout.forget()  # records may be due that this round could not claim
        if not batch and (free <= 0 or not look):
            return Round(claimed=0, limit=0, due=self._lookout.at, looked=free > 0)
        resolved: dict[uuid.UUID, Resolution] = {}
        records: list[DeliveryRecord] = []
        due = self._lookout.at
        try:
            async with self._store.transaction() as tx:
                claiming = free > 0 and look  # if not, the outcomes may go autocommitted
                if batch:
                    await self._recorder.write(tx, batch, alone=not claiming)
                if claiming:
                    self._last_claim_at = now
                    records = await self._claim(tx, now=now, limit=free, resolved=resolved)
                    due = await self._store.next_due(tx) if len(records) < free else None
                    self._lookout.looked(due, now, batch=batch, full=len(records) >= free)
                await tx.commit()
        except Exception as exc:
            if not batch:
                raise
            # Nothing was claimed; the outcomes are recorded one by one (a hook that
            # fails is left out for its own outcome only), the claim waits for next round.
            log.warning("delivery.round_failed", service=self._service, error=type(exc).__name__)
            await self._recorder.recover(batch)
            self._wake.set()  # their slots are free: claim again without waiting for a poll
            self._lookout.forget()
            return Round(claimed=0, limit=0, due=None, looked=False)
        finally:
            self._recorder.done(batch)
        if batch and free <= 0:
            self._wake.set()  # slots freed by a round that could not claim: claim now
        if records:
            self._claims.hold(records, claimed_at=now)
            # Sending goes on in a task of its own, so the next round need not wait for it.
            self._spawn(self._dispatch(records, resolved, claimed_at=now), "delivery-dispatch")
        return Round(claimed=len(records), limit=free, due=due, looked=free > 0)

    async def _claim(
        self,
        tx: Transaction,
        *,
        now: datetime,
        limit: int,
        resolved: dict[uuid.UUID, Resolution],
    ) -> list[DeliveryRecord]:
        """Claim up to `limit` due records in `tx`; what the plan makes of each in `resolved`."""
        excluded, room = self._admission.room(now)

        async def resolve(session: AsyncSession, records: list[DeliveryRecord]) -> None:
            due = [r for r in records if not self._admission.expired(r, now)]
            if due:
                answers = await self._plan.resolve_all(session, due)
                resolved.update(zip((r.delivery_id for r in due), answers, strict=True))

        return await self._store.claim(
            owner=self.owner_id, now=now, lease_until=now + self._config.lease, limit=limit,
            exclude_keys=excluded, room=room, default_room=self._limits.initial, read=resolve,
            tx=tx,
        )  # fmt: skip

    def _free(self, *, settling: int = 0) -> int:
        """How many more records to claim now: `max_in_flight` counts records being sent;
        sent ones waiting for their outcome to be recorded (`settling` of them in this
        round) do not, up to as many again, so recording never holds up the next sends."""
        unsent = self._config.max_in_flight - self._claims.unsent
        free = min(unsent, 2 * self._config.max_in_flight - len(self._claims) + settling)
        if not settling and self._claims.unsent and free < max(1, self._config.max_in_flight // 8):
            # A round that records nothing is a transaction for the claim alone: while
            # sends are under way, one per few freed slots, not one per slot.
            return 0
        return free

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(
        self,
        records: list[DeliveryRecord],
        resolved: dict[uuid.UUID, Resolution],
        *,
        claimed_at: datetime,
    ) -> None:
        """Start a claimed batch's sends (old claims renewed first), record what needs none."""
        immediate, sends = self._admission.sort(records, resolved, claimed_at)
        ids = [s.record.delivery_id for s in sends]
        self._send(sends, await self._claims.confirm(ids, claimed_at=claimed_at) if ids else set())
        self._record_now(immediate)

    def _send(self, sends: list[Send], ours: set[uuid.UUID]) -> None:
        """A task for each send whose record is still ours; the others give their slots back."""
        for send in sends:
            if send.record.delivery_id not in ours:
                self._claims.free_slot(send.key)
                continue
            self._sending[send.record.aggregate_id] += 1
            self._spawn(self._attempt(send), "delivery-attempt")

    def _record_now(self, immediate: list[Outcome]) -> None:
        if immediate:
            self._recorder.queue(immediate)  # recorded by the next round
            self._wake.set()

    async def _attempt(self, send: Send) -> None:
        """Send one message (no transaction open), then hand its outcome to the recorder."""
        record, key = send.record, send.key
        started = time.monotonic()
        answer: SmsReceipt | Exception | None
        try:
            answer = await self._senders.send(send.outbound, delivery_id=str(record.delivery_id))
        except Exception as exc:  # a DeliveryError, or a sender's bug (admission logs it)
            answer = exc
        finally:
            self._claims.free_slot(key)
            self._claims.sent(record.delivery_id)
            self._sending[record.aggregate_id] -= 1
            if self._sending[record.aggregate_id] <= 0:
                del self._sending[record.aggregate_id]
            self._wake.set()  # a slot is free: the next claim may take one more for `key`
        outcome = self._admission.answered(
            send, answer, now=self._clock(), seconds=time.monotonic() - started
        )
        self._recorder.queue([outcome])  # recorded by the next round, with others
        self._wake.set()

    def _released(self, ids: Sequence[uuid.UUID]) -> None:
        """Records settled: no longer ours (no wake-up: their round claimed for their slots)."""
        self._claims.release(ids)
