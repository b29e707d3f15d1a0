"""The outbox relay: committed rows published to Kafka in order per key.

`OutboxRelay` publishes committed rows to Kafka, in id order per key, deletes them once
sent, and survives restarts: a row is only deleted after the broker acknowledged it
(acks=all), so a crash between the two publishes it again, which consumers absorb
through their inbox. A sent row is deleted rather than marked sent (`sent_at`): nobody
reads it again, and the UPDATE cost the database a whole new row version and an entry in
every index of the table, where a DELETE writes a few bytes. Rows marked sent before
that change keep their `sent_at` (every statement here leaves them out) until the
retention deletes them (services/common/retention.py).

Several relays may run against one outbox. Each round a relay claims, in one
statement, the unsent rows nobody else holds (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
SQLite's writer lock makes the same statement atomic), oldest first: a row only
together with every earlier unsent row of its key, so a key's consecutive rows (an
alert's `alert.triggered` and its `alert.delivered`) go in one round, and a row whose
key has an earlier unsent row held by someone else is never claimed: two relays cannot
reorder one key. A round sends a key's rows in one record batch per partition when the
publisher can (the Kafka one: appended whole or not at all), else in waves (ordering.py):
a key's later row goes to the broker only once its earlier one was acknowledged, so a
failure never leaves a later row of its key published before it.

A claim is a short lease (`claimed_until`, 2 s by default) that a heartbeat renews
every third of its length while the relay publishes and records the round. A relay
that dies stops renewing, and another relay takes its rows over as soon as the lease
ends (an idle relay sleeps until the earliest lease ends, not a whole poll). A slow
publish keeps its claim, so no other relay publishes that row or the key's next one
behind its back. Chosen over a lock tied to the database session because SQLite, the
embedded default, has no such lock (it would need the lease anyway); because
PostgreSQL drops a dead client's locks only when it sees the socket close, which a
host that lost power or its network never does until TCP keepalive gives up (hours,
untuned), while a lease ends on time; and because a transaction held open across a
network publish pins a connection per relay and holds back vacuum.

Why the lease is the database's clock, and what a stalled loop costs: leases.py.

On PostgreSQL most rows need no claim: the INSERT leases them to this process's relay
and the commit hands them over (handoff.py; an idle relay's send begins right there,
eager.py); a turn publishes and deletes them, re-leasing first stale ones (leases.py).

A relay may linger (`linger`, lingering.py): rows handed over wait a moment for more (a
few notices' alert events), then go in one round and one settling; a stop ends it.

A commit that enqueued something wakes the relays of this process at once (an
in-process signal), and on PostgreSQL a `NOTIFY` wakes relays in other processes (a
relay ignores its own process's, which carry its token); polling is the fallback.
While a relay listens, every commit anywhere wakes it, so it polls
`_LISTENING_POLL_FACTOR` times less often: an idle relay's claim and lease query cost
CPU in the service and in PostgreSQL every poll.

A round costs two statements whatever its size: the claim (which returns the rows to
send, and whether a row of the same key waits behind each) and the settling (which
deletes the batch and returns when the earliest lease left on the outbox ends; a handed
round's delete waits a moment for the next rounds', settling.py). The
batch goes to the broker in one produce round (`BatchPublisher`: every record handed
to the producer, then all acknowledgements awaited). The relay claims again at once
only when the batch was full, a claimed row had a successor, or a commit woke it;
otherwise it sleeps until a wake-up, the end of that earliest lease, or the poll. It
never reads back rows it just sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.common.db import is_postgres
from services.common.direct import DirectStatement
from services.common.logging import get_logger
from services.common.metrics import OUTBOX_PUBLISHED
from services.common.outbox.eager import Started, StartingPublisher
from services.common.outbox.handoff import Taker, register_taker
from services.common.outbox.leases import LeaseKeeper, renew, retake
from services.common.outbox.lingering import Lingering
from services.common.outbox.ordering import KeysTogetherPublisher, in_waves
from services.common.outbox.peers import ListenerPeers
from services.common.outbox.rows import (
    BatchPublisher,
    claim_rows,
    one_by_one,
    relay_row,
    split_results,
)
from services.common.outbox.settling import Settling
from services.common.outbox.statements import RelayStatements
from services.common.outbox.wakeup import Wakeup
from services.common.outbox.writing import (
    _PROCESS_TOKEN,
    HANDED_SUFFIX,
    OutboxRow,
    PublishFn,
    _wakers,
    heard_from_elsewhere,
)

__all__ = ["BatchPublisher", "OutboxRelay"]

log = get_logger(__name__)

# Shortest idle wait: a lease that ended while another relay claims it must not spin us.
_MIN_IDLE_WAIT_S = 0.05
# While listening, the poll only backs up NOTIFY (which a live LISTEN connection does not
# lose; a lost one wakes the loop to listen again): poll this many times less often.
_LISTENING_POLL_FACTOR = 5


class OutboxRelay:
    """Publishes committed outbox rows; run one or several per service."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        publish: PublishFn | BatchPublisher,
        component: str,
        batch_size: int = 100,
        poll_interval_s: float = 1.0,
        claim_ttl_s: float = 2.0,
        retry_delay_s: float = 1.0,
        relay_id: str | None = None,
        wake_on_commit: bool = True,
        hand_off: bool = True,
        linger_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,  # the linger's (tests move it on)
    ) -> None:
        self._engine = engine
        self._postgres = is_postgres(engine)
        # No BEGIN/COMMIT on PostgreSQL; SQLite's BEGIN IMMEDIATE makes a claim atomic.
        self._sessions = async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT") if self._postgres else engine,
            expire_on_commit=False,
        )
        # A BatchPublisher (the Kafka one) sends a batch in one produce round; a plain
        # function (tests' crashing publishers) is called per row, concurrently.
        self._publish_batch: Callable[[Sequence[OutboxRow]], Awaitable[Sequence[object]]] = (
            publish.publish_batch if isinstance(publish, BatchPublisher) else one_by_one(publish)
        )
        self._component = component
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._claim_ttl_s = claim_ttl_s
        self.relay_id = relay_id or f"relay-{uuid.uuid4().hex[:12]}"
        self._statements = RelayStatements(
            postgres=self._postgres,
            relay_id=self.relay_id,
            batch_size=batch_size,
            claim_ttl_s=claim_ttl_s,
            retry_delay_s=retry_delay_s,
        )
        self._retake = DirectStatement(lambda: self._statements.retake)
        # A publisher that sends a key's rows in one atomic record batch needs no waves.
        self._publish_together = (
            publish.publish_keys_together if isinstance(publish, KeysTogetherPublisher) else None
        )
        # Off only to measure the polling fallback (benchmarks/outbox_latency.py --no-wake).
        self._wake_on_commit = wake_on_commit
        # Rows this process's commits handed over (handoff.py), with when (loop time).
        self._hand_off = hand_off and self._postgres
        self._handed: deque[tuple[float, OutboxRow]] = deque()
        # An idle relay that does not linger begins a handed batch at the commit (eager.py).
        self._started = Started(publish) if isinstance(publish, StartingPublisher) else None
        # Handed rows wait up to `linger_s` for more, then go in one round (lingering.py).
        self._clock = clock
        self.linger(linger_s)
        self._settling = Settling(
            engine=engine,
            sessions=self._sessions,
            statements=self._statements,
            postgres=self._postgres,
            lease_s=claim_ttl_s,
        )
        self._set_loop_state()
        self.published_total = 0

    def _set_loop_state(self) -> None:  # the loop's state before its first round
        self._stop_taking: Callable[[], None] | None = None
        # `_wake` starts a loop turn; a claim runs in it only if wanted (a commit that left
        # a row unleased, a NOTIFY, `wake`) or due (a lease ends, the poll), else the
        # turn only publishes what was handed over. A `Wakeup`, not an `asyncio.Event`
        # under `wait_for`: the loop resumes one event-loop turn after `set`, not three.
        self._wake = Wakeup()
        self._claim_wanted = True
        self._claim_at = 0.0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None
        self._peers = ListenerPeers(self._component, clock=time.monotonic)
        self._listen_wanted = False
        self._listen_failing = False
        # What the last round learnt: rows wait behind its claim; the earliest lease's end.
        self._successors_waiting = False
        # A claim someone asked for (`wake`) ran while sent rows waited to be deleted (a
        # key's later row may wait behind them): claim again once they are gone.
        self._asked = self._claim_after_delete = False
        # When the rows handed now began to linger (the linger's clock); whether one of
        # them goes at once (lingering.py).
        self._linger_from, self._urgent = 0.0, False

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start relaying in the background (and listen for NOTIFY on PostgreSQL)."""
        if self._wake_on_commit:
            _wakers.add(self.wake)
        if self._hand_off:
            taker = Taker(relay_id=self.relay_id, lease_s=self._claim_ttl_s, take=self._take)
            self._stop_taking = register_taker(self._engine, taker)
        self._listen_wanted = self._wake_on_commit and self._postgres
        await self._ensure_listening()
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._component}")
        log.info("outbox.relay_started", relay_id=self.relay_id, component=self._component)

    async def stop(self) -> None:
        """Finish the round in progress and publish what was handed over, then stop."""
        if self._stop_taking is not None:
            self._stop_taking()  # commits from now on lease nothing to this relay
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._handed:
            try:
                await self._relay_handed()
            except Exception as exc:  # their leases end; another relay takes them then
                log.warning(
                    "outbox.hand_off_failed", relay_id=self.relay_id, error=type(exc).__name__
                )
                break
        await self._guarded(self._settling.delete_waiting)  # failed: claimed again (duplicates)
        _wakers.discard(self.wake)
        self._peers.left()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
        log.info("outbox.relay_stopped", relay_id=self.relay_id, published=self.published_total)

    def linger(self, seconds: float, *, at_once: Iterable[str] = ()) -> None:
        """Before `start`: hold handed rows up to `seconds` for more, then send them together;
        a row of an `at_once` topic ends the wait when handed over."""
        self._lingering = Lingering(
            linger_s=seconds,
            rows=self._batch_size,
            lease_s=self._claim_ttl_s,
            at_once=at_once,
            clock=self._clock,
        )

    def wake(self) -> None:
        """Ask for a claim round now."""
        self._claim_wanted = self._asked = True
        self._wake.set()

    def _take(self, rows: list[dict[str, Any]], leased_at: float) -> None:
        """Rows a commit leased to this relay (handoff.py): published in the next turn."""
        if self._stopping.is_set():
            return  # leased: another relay claims them once the lease ends
        handed = [relay_row(row) for row in rows]
        if self._may_start(handed) and self._started is not None:
            self._started.start(handed)
        if not self._handed:
            self._linger_from = self._lingering.now()
        self._urgent |= self._lingering.at_once(row.topic for row in handed)
        self._handed.extend((leased_at, row) for row in handed)
        self._wake.set()

    def _may_start(self, rows: list[OutboxRow]) -> bool:
        # Idle, nothing else handed, no linger, no key held behind an earlier row.
        idle = self._wake.waiting and not self._handed and not self._lingering.linger_s
        return idle and not any(self._lingering.held(row.key) for row in rows)

    async def _ensure_listening(self) -> None:
        """(Re)open the LISTEN connection, e.g. after PostgreSQL restarted (peers.py)."""
        if not self._listen_wanted:
            return
        if self._listener is not None and not self._listener.is_closed():
            await self._peers.recount_if_due(self._listener)
            return
        import asyncpg

        try:
            self._listener = await self._peers.listen(self._engine.url, self._notified, self.wake)
            if self._listen_failing:
                log.info("outbox.listen_restored", component=self._component)
            self._listen_failing = False
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            # Polling still delivers everything; NOTIFY only makes it prompt. Say so
            # once per outage, not once per poll.
            if not self._listen_failing:
                log.warning(
                    "outbox.listen_failed", component=self._component, error_type=type(exc).__name__
                )
            self._listen_failing = True
            self._listener = None

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        token, handed = payload.removesuffix(HANDED_SUFFIX), payload.endswith(HANDED_SUFFIX)
        # This process's own commits woke the relay already, without the round trip.
        if token == _PROCESS_TOKEN:
            return
        self._peers.heard_peer()
        # Rows all handed to the sender's relay: a claim would find them leased. If that
        # process dies first, its leases end and a poll claims them, as after a wake.
        if not handed:
            self.wake()
        heard_from_elsewhere()

    def _listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    def _fallback_poll_s(self) -> float:
        factor = _LISTENING_POLL_FACTOR if self._listening() else 1
        return self._poll_interval_s * factor

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            self._wake.clear()
            if self._handed:
                await self._lingering.wait(
                    first_at=self._linger_from,
                    count=lambda: len(self._handed),
                    woken=self._wake,
                    stopping=self._stopping,
                    urgent=lambda: self._urgent,
                )
                self._urgent = False
                await self._guarded(self._relay_handed)
                # What the settling said of other leases bounds the wait for a claim.
                lease_wait = self._wait_for_lease_s(self._settling.lease_ends_in_s)
                self._claim_at = min(self._claim_at, loop.time() + lease_wait)
            if self._claim_wanted or loop.time() >= self._claim_at:
                asked, self._asked = self._asked, False
                self._claim_wanted = False
                relayed = await self._guarded(self.relay_once)
                # Asked (a commit, a NOTIFY) and rows still waiting: a key's row may wait
                # behind them; look again once they are gone (that look asks nothing more).
                self._claim_after_delete = asked and self._settling.waiting
                if relayed is None:
                    wait = self._poll_interval_s
                elif relayed >= self._batch_size or (relayed and self._successors_waiting):
                    self._claim_wanted = True  # more is claimable now: no need to wait
                    continue
                elif relayed:
                    # The settling said when the earliest lease left ends; a commit
                    # meanwhile has set the wake-up already, so nothing new waits a poll.
                    wait = self._wait_for_lease_s(self._settling.lease_ends_in_s)
                else:
                    await self._ensure_listening()
                    wait = await self._idle_wait_s()
                self._claim_at = loop.time() + wait
            if self._settling.due():
                await self._guarded(self._settling.delete_waiting)
                self._claim_wanted |= self._claim_after_delete
                self._claim_after_delete = False
            if not self._handed:
                await self._rest(self._claim_at - loop.time())

    async def _rest(self, wait: float) -> None:
        """Sleep until a wake-up, `wait` (then claim) or the waiting deletes' time."""
        due = self._settling.due_in()
        if due is not None and due < wait:
            await self._sleep(due)  # the loop's next turn deletes them, or takes what woke it
        elif not await self._sleep(wait):
            self._claim_wanted = True  # the wait ran out: a lease ended, or the poll

    async def _guarded(self, round_: Callable[[], Awaitable[int]]) -> int | None:
        """Run one round; None if it failed (logged: the loop carries on)."""
        try:
            return await round_()
        except Exception as exc:
            log.error(
                "outbox.relay_round_failed",
                relay_id=self.relay_id,
                error=str(exc),
                exc_type=type(exc).__name__,
            )
            return None

    async def _idle_wait_s(self) -> float:
        """Until the next poll, or sooner when a held lease ends (a crashed relay's rows)."""
        try:
            lease_ends_in = await self._settling.earliest_lease_end_s()
        except Exception:
            return self._poll_interval_s  # the next round reports what is wrong
        return self._wait_for_lease_s(lease_ends_in)

    def _wait_for_lease_s(self, lease_ends_in: float | None) -> float:
        if lease_ends_in is None:
            return self._fallback_poll_s()
        # A little past the end, so the lease has surely lapsed when we look; never a spin.
        return min(self._fallback_poll_s(), max(lease_ends_in + 0.01, _MIN_IDLE_WAIT_S))

    async def _sleep(self, seconds: float) -> bool:
        """Wait for a wake-up at most `seconds`; whether one came."""
        if seconds <= 0:
            return self._wake.is_set()
        return await self._wake.wait(seconds)

    # -- one round -----------------------------------------------------------------

    async def relay_once(self) -> int:
        """Claim, publish and settle one batch; returns how many rows were published."""
        rows, self._successors_waiting = await claim_rows(self._sessions, self._statements)
        if not rows:
            return 0
        return await self._publish_and_settle(rows)

    async def _relay_handed(self) -> int:
        """Publish and delete rows handed over at commit (a few batches at most): no claim.

        A row leased a third of its lease ago or more (a long transaction, a busy loop) is
        leased again first, in one statement, if still this relay's: left to a claim, it
        waited for its lease to end, and a relay behind under load fell further behind.
        """
        oldest = time.monotonic() - self._claim_ttl_s / 3
        begun: set[int] = self._started.ids if self._started is not None else set()
        rows: list[OutboxRow] = []
        stale: set[int] = set()
        while self._handed and len(rows) < self._lingering.round_rows:
            handed_at, row = self._handed.popleft()
            if self._lingering.held(row.key):
                # A key whose earlier row went to a claim (or failed) keeps its later rows
                # out of memory's path too: they follow it through the claim, in order.
                self._lingering.hold(row.key)
                self._claim_wanted = True
                continue
            rows.append(row)
            if handed_at < oldest and row.id not in begun:  # begun: sent while leased
                stale.add(row.id)
        rows = await self._retaken(rows, stale) if stale else rows
        if not rows:
            return 0
        return await self._publish_and_settle(sorted(rows, key=lambda row: row.id), defer=True)

    async def _retaken(self, rows: list[OutboxRow], stale: set[int]) -> list[OutboxRow]:
        # `rows` once their `stale` ones are leased again (leases.py: `retake`).
        lost: set[str] = {row.key for row in rows}  # if it fails: a claim, once leases end
        try:
            kept, lost = await retake(self._engine, self._retake, rows, stale)
            return kept
        finally:
            if lost:
                self._lingering.hold_all(lost)
                self._claim_wanted = True

    async def _publish_and_settle(self, rows: Sequence[OutboxRow], *, defer: bool = False) -> int:
        """Publish rows this relay holds (in id order per key), settle them (`defer`: the
        delete with the next rounds', settling.py); how many went."""
        ids = [row.id for row in rows]
        try:
            async with LeaseKeeper(
                renew=lambda: self._renew(ids), every_s=self._claim_ttl_s / 3
            ) as lease:
                results = await self._publish(rows)
                # Renewal stops first, so it cannot extend a failed row's shorter retry
                # lease; what is left of the lease (at least two thirds) covers the settling.
                await lease.stop()
                sent, failed = split_results(rows, results)
                await self._settling.settle(sent, failed, defer=defer)
        except BaseException:
            # A later row of these keys handed over meanwhile must not go out before them.
            self._lingering.hold_all(row.key for row in rows)
            raise
        self._lingering.hold_all(row.key for row, _error in failed)
        self.published_total += len(sent)
        if sent:
            OUTBOX_PUBLISHED.labels(self._component).inc(len(sent))
        for row, error in failed:
            log.warning(
                "outbox.publish_failed",
                message_id=row.message_id,
                topic=row.topic,
                event_type=row.event_type,
                error=type(error).__name__,
            )
        return len(sent)

    async def _publish(self, rows: Sequence[OutboxRow]) -> Sequence[object]:
        """Per row None or its error: a key's rows together if the publisher can, else in waves."""
        if self._started is not None:
            return await self._started.publish(rows, self._publish_now)
        return await self._publish_now(rows)

    async def _publish_now(self, rows: Sequence[OutboxRow]) -> Sequence[object]:
        if self._publish_together is not None:
            return await self._publish_together(rows)
        return await in_waves(rows, self._publish_batch)

    async def _renew(self, ids: list[int]) -> None:
        """Extend this relay's lease on `ids` (the heartbeat; leases.py)."""
        await renew(self._sessions, self._statements, self.relay_id, ids)
