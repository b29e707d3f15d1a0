"""The dispatcher against an in-memory store, fake senders and a clock that moves on command."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import structlog

from services.common.delivery import DeliveryError, EngineConfig
from tests.unit.common.delivery.fakes import (
    FakePlan,
    FakeWebhook,
    accept,
    make_engine,
    order,
)


def _failing(times: int, reason: str = "http_5xx") -> FakeWebhook:
    count = {"n": 0}

    async def behaviour(url: str, delivery_id: str) -> None:
        count["n"] += 1
        if count["n"] <= times:
            raise DeliveryError("receiver failed", reason=reason)  # type: ignore[arg-type]

    return FakeWebhook(behaviour)


async def _pump_until_settled(engine, store, clock, delivery_id, rounds: int = 50) -> None:  # type: ignore[no-untyped-def]
    for _ in range(rounds):
        if store.state(delivery_id) not in ("pending", "sending"):
            return
        clock.to(store.rows[delivery_id].next_attempt_at)
        await engine.pump()
    raise AssertionError(f"still {store.state(delivery_id)} after {rounds} rounds")


async def test_delivered_on_the_first_try() -> None:
    webhook = FakeWebhook()
    engine, store, plan, _ = make_engine(webhook=webhook)
    o = order("http://a/hook")
    await accept(engine, o)
    assert await engine.pump() == 1
    assert store.state(o.delivery_id) == "delivered"
    assert plan.hooks(o.delivery_id) == [("delivered", 1)]
    assert webhook.attempts == [("http://a/hook", str(o.delivery_id))]


async def test_transient_failures_retry_on_the_durable_timer_with_the_same_delivery_id() -> None:
    webhook = _failing(3)
    engine, store, plan, clock = make_engine(webhook=webhook)
    o = order("http://a/hook")
    await accept(engine, o)
    await engine.pump()
    row = store.rows[o.delivery_id]
    assert row.state == "pending"
    assert row.next_attempt_at > clock.now
    assert await engine.pump() == 0  # not due yet: nothing is tried early
    await _pump_until_settled(engine, store, clock, o.delivery_id)
    assert store.state(o.delivery_id) == "delivered"
    assert store.rows[o.delivery_id].record.attempts == 4
    assert plan.hooks(o.delivery_id) == [("attempt_failed", "http_5xx")] * 3 + [("delivered", 4)]
    assert {d for _, d in webhook.attempts} == {str(o.delivery_id)}
    assert len(webhook.delivered) == 1


async def test_permanent_refusal_fails_at_once() -> None:
    engine, store, plan, _ = make_engine(webhook=_failing(99, "http_4xx"))
    o = order("http://a/hook")
    await accept(engine, o)
    await engine.pump()
    assert store.state(o.delivery_id) == "failed"
    assert plan.hooks(o.delivery_id) == [("failed", "http_4xx")]


async def test_gives_up_at_the_purposes_deadline_never_after() -> None:
    webhook = _failing(10_000)
    plan = FakePlan(give_up=timedelta(minutes=2))
    engine, store, plan, clock = make_engine(webhook=webhook, plan=plan, retry_max_s=20.0)
    start = clock.now
    o = order("http://a/hook")
    await accept(engine, o)
    await engine.pump()
    await _pump_until_settled(engine, store, clock, o.delivery_id, rounds=200)
    hooks = plan.hooks(o.delivery_id)
    assert hooks[-1] == ("failed", "http_5xx")
    assert all(h == ("attempt_failed", "http_5xx") for h in hooks[:-1])
    assert len(hooks) >= 4  # it did retry before giving up
    assert clock.now <= start + timedelta(minutes=2)
    assert store.rows[o.delivery_id].last_error_class == "http_5xx"


async def test_breaker_opens_and_skips_the_network_while_open() -> None:
    webhook = _failing(10_000, "unreachable")
    engine, store, plan, clock = make_engine(
        webhook=webhook, breaker_failures=2, breaker_cooldown=timedelta(seconds=30)
    )
    first = [order("http://dead/hook") for _ in range(2)]
    await accept(engine, *first)
    await engine.pump()  # two failures: the breaker opens
    assert len(webhook.attempts) == 2
    later = order("http://dead/hook")
    other = order("http://alive/hook")
    await accept(engine, later, other)
    await engine.pump()
    assert plan.hooks(later.delivery_id) == [("attempt_failed", "circuit_open")]
    assert len([a for a in webhook.attempts if a[0] == "http://dead/hook"]) == 2  # not touched
    assert ("http://alive/hook", str(other.delivery_id)) in webhook.attempts
    # Rescheduled no earlier than the breaker lets a probe through.
    assert store.rows[later.delivery_id].next_attempt_at >= clock.now + timedelta(seconds=30)
    assert store.rows[later.delivery_id].record.attempts == 0  # not a network attempt


async def test_skip_and_cancel() -> None:
    plan = FakePlan()
    engine, store, plan, _ = make_engine(plan=plan)
    skipped, cancelled, kept = order("http://a"), order("http://b"), order("http://c")
    plan.skip.add(skipped.delivery_id)
    await accept(engine, skipped, cancelled, kept)
    assert await engine.cancel(None, aggregate_id=cancelled.aggregate_id) == 1  # type: ignore[arg-type]
    await engine.pump()
    assert store.state(skipped.delivery_id) == "skipped"
    assert plan.hooks(skipped.delivery_id) == [("skipped", "acknowledged")]
    assert store.state(cancelled.delivery_id) == "cancelled"
    assert plan.hooks(cancelled.delivery_id) == []
    assert store.state(kept.delivery_id) == "delivered"


async def test_accept_is_idempotent_on_the_delivery_id() -> None:
    engine, store, _, _ = make_engine()
    o = order("http://a")
    assert await engine.accept(_session(), o)
    assert not await engine.accept(_session(), o)
    assert len(store.rows) == 1


async def test_a_plan_resolving_another_channel_never_sends() -> None:
    webhook = FakeWebhook()
    engine, store, plan, _ = make_engine(webhook=webhook)
    o = order("http://a")
    plan.wrong_channel.add(o.delivery_id)
    await accept(engine, o)
    await engine.pump()
    assert store.state(o.delivery_id) == "failed"
    assert plan.hooks(o.delivery_id) == [("failed", "internal")]
    assert webhook.attempts == []


async def test_a_failing_hook_still_records_the_outcome_so_nothing_is_resent() -> None:
    webhook = FakeWebhook()
    engine, store, _plan, clock = make_engine(webhook=webhook, plan=FakePlan(fail_hook="delivered"))
    o = order("http://a")
    await accept(engine, o)
    await engine.pump()
    assert store.state(o.delivery_id) == "delivered"
    clock.advance(3600)
    assert await engine.pump() == 0
    assert len(webhook.attempts) == 1


async def test_a_lost_lease_is_taken_over_and_the_late_outcome_ignored() -> None:
    gate = asyncio.Event()

    async def slow(url: str, delivery_id: str) -> None:
        await gate.wait()

    webhook_a = FakeWebhook(slow)
    engine_a, store, plan, clock = make_engine(webhook=webhook_a, owner="a")
    webhook_b = FakeWebhook()
    engine_b, _, _, _ = make_engine(
        webhook=webhook_b, store=store, plan=plan, clock=clock, owner="b"
    )
    o = order("http://a")
    await accept(engine_a, o)
    round_a = asyncio.create_task(engine_a.pump())
    await asyncio.wait_for(webhook_a.wait_until(lambda: bool(webhook_a.attempts)), timeout=30)
    assert await engine_b.pump() == 0  # a holds the lease
    # a never renewed (its heartbeat is not running): the lease lapses
    clock.advance(EngineConfig().lease.total_seconds() + 1)
    assert await engine_b.pump() == 1
    assert store.state(o.delivery_id) == "delivered"
    gate.set()
    await round_a
    assert plan.hooks(o.delivery_id) == [("delivered", 1)]  # a's late result did not count


async def test_a_slow_destination_holds_only_its_own_slots() -> None:
    gate = asyncio.Event()

    async def behaviour(url: str, delivery_id: str) -> None:
        if "slow" in url:
            await gate.wait()

    webhook = FakeWebhook(behaviour)
    engine, store, _plan, _ = make_engine(webhook=webhook, max_in_flight=8, per_destination=2)
    slow = [order("http://slow/hook") for _ in range(10)]
    fast = [order(f"http://fast-{i}/hook") for i in range(30)]
    await accept(engine, *slow, *fast)
    stop = asyncio.Event()
    runner = asyncio.create_task(engine.run(stop))
    fast_ids = {str(o.delivery_id) for o in fast}

    await asyncio.wait_for(
        webhook.wait_until(lambda: fast_ids <= {d for _, d in webhook.delivered}), timeout=30
    )
    # Every fast delivery finished while the slow destination still hung ...
    assert not gate.is_set()
    assert not any("slow" in url for url, _ in webhook.delivered)
    # ... and the slow one never had more than its share in flight.
    assert webhook.max_in_flight["http://slow/hook"] == 2
    gate.set()
    stop.set()
    await asyncio.wait_for(runner, timeout=30)
    assert all(store.state(o.delivery_id) in ("delivered", "pending") for o in slow)


def _session():  # type: ignore[no-untyped-def]
    from tests.unit.common.delivery.fakes import _NoSession

    return _NoSession()


@pytest.mark.parametrize("outcome_lines", [True, False])
async def test_the_engines_delivered_and_skipped_lines_are_left_to_a_plan_that_writes_its_own(
    outcome_lines: bool,
) -> None:
    """Router's hooks log each delivered and skipped notification: its engine does not
    log them a second time; failures are the engine's lines either way."""
    plan = FakePlan()
    engine, store, plan, _ = make_engine(
        webhook=_failing(1, "http_4xx"), plan=plan, outcome_lines=outcome_lines
    )
    failed, delivered, skipped = order("http://a/1"), order("http://a/2"), order("http://a/3")
    plan.skip.add(skipped.delivery_id)
    with structlog.testing.capture_logs() as logs:
        for o in (failed, delivered, skipped):
            await accept(engine, o)
            await engine.pump()
    assert [store.state(o.delivery_id) for o in (failed, delivered, skipped)] == [
        "failed",
        "delivered",
        "skipped",
    ]
    events = [e["event"] for e in logs if e["event"].startswith("delivery.")]
    quiet = ["delivery.failed"]
    assert events == (
        [*quiet, "delivery.delivered", "delivery.skipped"] if outcome_lines else quiet
    )
