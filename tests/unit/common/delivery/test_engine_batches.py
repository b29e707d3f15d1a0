"""Bulk acceptance, outcomes recorded in batches, claims lost under load, SMS receipts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from services.common.delivery import DeliveryRecord, EngineConfig, Outbound, Settled, Skip
from services.common.delivery.claims import Claims
from tests.unit.common.delivery.fakes import (
    FakeClock,
    FakePlan,
    FakeSms,
    FakeStore,
    FakeWebhook,
    accept,
    make_engine,
    order,
    until,
)


class BatchPlan(FakePlan):
    """Counts `on_outcomes` calls (and still records each hook through the default)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def on_outcomes(self, tx: Any, outcomes: Sequence[Settled]) -> None:
        self.batches.append(len(outcomes))
        await super().on_outcomes(tx, outcomes)


async def test_many_orders_are_accepted_in_one_statement_and_idempotently() -> None:
    engine, store, _plan, _ = make_engine()
    orders = [order(f"http://l/{i}") for i in range(50)]
    assert await engine.accept_many(_session(), orders) == 50
    assert store.inserts == 1
    again = [orders[0], order("http://new"), orders[1]]
    assert await engine.accept_many(_session(), again) == 1  # only the new one
    assert await engine.accept_many(_session(), []) == 0
    assert len(store.rows) == 51
    assert all(store.state(o.delivery_id) == "pending" for o in orders)


async def test_outcomes_are_settled_and_heard_in_batches() -> None:
    webhook = FakeWebhook()
    plan = BatchPlan()
    engine, store, _plan, _ = make_engine(webhook=webhook, plan=plan, max_in_flight=64)
    orders = [order(f"http://l/{i}") for i in range(60)]
    await accept(engine, *orders)
    assert await engine.pump() == 60
    assert all(store.state(o.delivery_id) == "delivered" for o in orders)
    assert sum(store.settle_batches) == 60
    assert len(store.settle_batches) < 60 / 4  # many outcomes share a transaction
    assert plan.batches == store.settle_batches  # one on_outcomes call per transaction
    assert sorted(i for _, i, _ in plan.calls) == sorted(o.delivery_id for o in orders)


async def test_a_claim_taken_over_while_resolving_is_not_sent() -> None:
    """A slow round (longer than a heartbeat) confirms its claims before it sends."""
    clock = FakeClock()
    store = FakeStore()
    config = EngineConfig()

    class SlowPlan(FakePlan):
        async def resolve(self, session: Any, record: DeliveryRecord) -> Outbound | Skip:
            # The machine stalls past our lease, and another process takes the record.
            clock.advance(config.lease.total_seconds() + 1)
            taken = await store.claim(
                owner="b", now=clock(), lease_until=clock() + config.lease, limit=10
            )
            assert [r.delivery_id for r in taken] == [record.delivery_id]
            return await super().resolve(session, record)

    webhook = FakeWebhook()
    engine, _, plan, _ = make_engine(webhook=webhook, plan=SlowPlan(), clock=clock, store=store)
    o = order("http://a")
    await accept(engine, o)
    assert await engine.pump() == 1
    assert webhook.attempts == []  # b's to send, not ours
    assert store.rows[o.delivery_id].claimed_by == "b"
    assert plan.calls == []
    # Our slot is free again: the next round may claim other work.
    assert await engine.pump() == 0


async def test_a_quick_round_sends_without_an_extra_renewal() -> None:
    engine, store, _plan, _ = make_engine()
    await accept(engine, order("http://a"))
    await engine.pump()
    assert store.renewals == 0


async def test_the_heartbeat_drops_claims_another_process_took_over() -> None:
    clock = FakeClock()
    store = FakeStore()
    mine, theirs = order("http://a"), order("http://b")
    await store.insert_many(None, [_accepted(mine), _accepted(theirs)], now=clock())
    claimed = await store.claim(owner="a", now=clock(), lease_until=clock(), limit=10)
    claims = Claims(
        store=store, owner="a", service="test", lease=timedelta(seconds=10),
        heartbeat=timedelta(milliseconds=10), clock=clock,
    )  # fmt: skip
    claims.hold(claimed)
    store.rows[theirs.delivery_id].claimed_by = "b"  # taken over while we fell behind
    beating = asyncio.create_task(claims.heartbeat())
    try:
        async with asyncio.timeout(30):
            while theirs.delivery_id in claims:  # noqa: ASYNC110 - polls the engine's state
                await asyncio.sleep(0.01)
    finally:
        beating.cancel()
    assert mine.delivery_id in claims
    assert store.rows[mine.delivery_id].claimed_until == clock() + timedelta(seconds=10)


async def test_an_sms_receipt_is_kept_on_the_record() -> None:
    sms = FakeSms(segments=3)
    plan = FakePlan()
    plan.channels = ("webhook", "email", "sms")  # type: ignore[assignment]
    engine, store, plan, _ = make_engine(sms=sms, plan=plan)
    text = replace(order("+15555550123"), channel="sms")
    await accept(engine, text)
    await engine.pump()
    assert sms.sent == [str(text.delivery_id)]
    row = store.rows[text.delivery_id]
    assert (row.state, row.segments) == ("delivered", 3)
    hook, delivery_id, _ = plan.calls[0]
    assert (hook, delivery_id) == ("delivered", text.delivery_id)


def _accepted(o: Any) -> Any:
    from services.common.delivery.store import Accepted
    from tests.unit.common.delivery.fakes import T0

    return Accepted(o, T0 + timedelta(hours=1))


def _session() -> Any:
    class _Session:
        info: dict[str, Any] = {}

    return _Session()


async def test_a_delivery_takes_two_transactions_at_a_low_rate() -> None:
    """The claim (with the plan's reads and the next-due question) is one transaction; the
    outcome, settled together with the next claim and next-due question, the other. They
    were five: claim, next due, settle, an empty claim woken by the settlement, next due."""
    webhook = FakeWebhook()
    engine, store, _plan, _ = make_engine(webhook=webhook)
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    o = order("http://l/1")
    await accept(engine, o)
    engine.wake()  # what the accepting transaction's commit does

    async def delivered() -> None:
        while store.state(o.delivery_id) != "delivered":  # noqa: ASYNC110 - the engine's state
            await asyncio.sleep(0.001)

    await asyncio.wait_for(delivered(), timeout=30)
    await asyncio.sleep(0.05)  # a needless third round would start at once: let it show
    stop.set()
    await running
    assert webhook.delivered == [("http://l/1", str(o.delivery_id))]
    assert store.transactions == 2
    assert store.next_due_alone == 0
    assert store.settle_batches == [1]


@dataclass
class _AlertSends:
    engine: Any
    store: FakeStore
    webhook: FakeWebhook
    fast: Any
    slow: Any
    holding: asyncio.Event  # set when the engine waits while an outcome is still queued


@asynccontextmanager
async def _one_answered_one_held(fast: Any, slow: Any, **config: Any) -> AsyncIterator[_AlertSends]:
    """Two sends running: `fast` answered, `slow` (its URL ends in /slow) held until the
    block ends; then it answers, is recorded, and the engine stops."""
    release = asyncio.Event()

    async def behaviour(url: str, _delivery_id: str) -> None:
        if url.endswith("/slow"):
            await release.wait()

    webhook = FakeWebhook(behaviour)
    engine, store, _plan, _ = make_engine(webhook=webhook, **config)
    holding = asyncio.Event()
    wait = engine._wait

    async def watched_wait(stop: asyncio.Event, timeout: float, *, heard: bool = False) -> bool:
        if engine._recorder.waiting:
            holding.set()
        return await wait(stop, timeout, heard=heard)

    engine._wait = watched_wait
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    await accept(engine, fast, slow)
    engine.wake()
    await asyncio.wait_for(webhook.wait_until(lambda: len(webhook.delivered) == 1), timeout=30)
    yield _AlertSends(engine, store, webhook, fast, slow, holding)
    release.set()
    if engine._config.outcome_linger > timedelta(seconds=1):
        await until(lambda: not engine._sending)  # both answered (and waiting, lingering)
        _linger_ends(engine)
    await until(lambda: store.state(slow.delivery_id) == "delivered")
    stop.set()
    await running


def _fast_answered_slow_held() -> AbstractAsyncContextManager[_AlertSends]:
    """An alert's two sends running: the fast one answered, the slow one held."""
    alert = order("http://l/fast").aggregate_id
    fast, slow = order("http://l/fast", aggregate=alert), order("http://l/slow", aggregate=alert)
    return _one_answered_one_held(fast, slow, sibling_wait=timedelta(seconds=60))


async def test_outcomes_of_one_request_wait_for_its_sends_in_flight_and_settle_together() -> None:
    """An alert's webhook answers first; its outcome waits (up to `sibling_wait`) for the
    alert's other send, and one round records both: one alert transition, not two."""
    async with _fast_answered_slow_held() as sends:
        # The engine waits while the fast outcome is still queued: it holds it back (a
        # round recording it alone would have taken it from the queue first).
        await asyncio.wait_for(sends.holding.wait(), timeout=30)
        assert sends.store.settle_batches == []
    assert sends.store.settle_batches == [2]


async def test_a_new_order_is_not_held_by_outcomes_waiting_for_their_siblings() -> None:
    async with _fast_answered_slow_held() as sends:
        new = order("http://l/new")
        await accept(sends.engine, new)
        sends.engine.wake()  # the accepting commit: claimed now, not after the sibling wait
        sent = ("http://l/new", str(new.delivery_id))
        await asyncio.wait_for(
            sends.webhook.wait_until(lambda: sent in sends.webhook.delivered), 30
        )
    assert sends.store.state(sends.fast.delivery_id) == "delivered"


def _two_alerts_one_held(**config: Any) -> AbstractAsyncContextManager[_AlertSends]:
    """Two alerts' sends running: one alert's answered, the other's held."""
    return _one_answered_one_held(order("http://l/fast"), order("http://l/slow"), **config)


# A lease long enough that the linger (at most a quarter of it) outlasts any test: the
# test ends it itself (`_linger_ends`), so nothing depends on how fast the machine is.
_LONG_LINGER = {"outcome_linger": timedelta(minutes=1), "lease": timedelta(minutes=10)}


def _linger_ends(engine: Any) -> None:
    engine._config = replace(engine._config, outcome_linger=timedelta(0))
    engine._wake.set()


async def test_outcomes_linger_for_other_requests_in_flight_and_settle_in_one_round() -> None:
    """One alert's outcome waits (up to `outcome_linger`, counted from when it was
    queued) for another alert's send still in flight: one round records both."""
    async with _two_alerts_one_held(**_LONG_LINGER) as sends:
        await asyncio.wait_for(sends.holding.wait(), timeout=30)
        assert sends.store.settle_batches == []
        assert sends.store.state(sends.fast.delivery_id) == "sending"
    assert sends.store.settle_batches == [2]


async def test_an_outcome_lingers_for_the_next_requests_outcome_with_nothing_in_flight() -> None:
    """At a steady rate a notice's sends are often done before the next notice's start:
    after a recent round, the outcome waits for outcomes to come, not only for sends
    under way. After a quiet spell (the first round here) it does not wait."""
    webhook = FakeWebhook()
    engine, store, _plan, _ = make_engine(webhook=webhook, **_LONG_LINGER)
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    first, second, third = order("http://l/1"), order("http://l/2"), order("http://l/3")
    await accept(engine, first)
    engine.wake()
    await until(lambda: store.state(first.delivery_id) == "delivered")  # not held
    assert store.settle_batches == [1]
    await accept(engine, second)
    await until(lambda: engine._recorder.waiting == 1 and not engine._sending)
    await accept(engine, third)
    await until(lambda: engine._recorder.waiting == 2 and not engine._sending)
    assert store.settle_batches == [1]  # nothing in flight, and both still held
    _linger_ends(engine)
    await until(lambda: store.state(third.delivery_id) == "delivered")
    stop.set()
    await running
    assert store.settle_batches == [1, 2]


async def test_without_a_linger_another_requests_send_does_not_hold_an_outcome() -> None:
    async with _two_alerts_one_held(outcome_linger=timedelta(0)) as sends:
        await until(lambda: sends.store.state(sends.fast.delivery_id) == "delivered")
        assert sends.store.state(sends.slow.delivery_id) == "sending"
    assert sends.store.settle_batches == [1, 1]


async def test_the_linger_is_bounded_an_outcome_is_recorded_while_others_still_send() -> None:
    """A send that never answers within the linger holds nobody else's outcome for longer."""
    async with _two_alerts_one_held(outcome_linger=timedelta(milliseconds=50)) as sends:
        await until(lambda: sends.store.state(sends.fast.delivery_id) == "delivered")
        assert sends.holding.is_set()  # it did wait first
        assert sends.store.state(sends.slow.delivery_id) == "sending"
    assert sends.store.settle_batches == [1, 1]


def test_the_linger_stays_under_a_quarter_of_the_lease() -> None:
    config = EngineConfig(outcome_linger=timedelta(seconds=5), lease=timedelta(seconds=8))
    assert config.linger_s == 2.0
    assert EngineConfig(outcome_linger=timedelta(milliseconds=40)).linger_s == 0.04
