"""Per-destination limits: claims take only what can be sent, a quick destination earns
more slots, and our own settlement is never mistaken for a lost claim."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta

import structlog

from services.common.delivery import DeliveryRecord
from services.common.delivery.claims import Claims
from services.common.delivery.store import Renewal
from tests.unit.common.delivery.fakes import (
    T0,
    FakeClock,
    FakeStore,
    FakeWebhook,
    accept,
    make_engine,
    order,
)


async def _run_until(engine, done, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    try:
        await asyncio.wait_for(done(), timeout)
    finally:
        stop.set()
        await task


async def test_a_destination_answering_quickly_earns_slots_up_to_its_ceiling() -> None:
    webhook = FakeWebhook(lambda url, delivery_id: asyncio.sleep(0.001))
    engine, _, _, _ = make_engine(webhook=webhook, per_destination=2, per_destination_max=6)
    orders = [order("http://quick/hook") for _ in range(300)]
    await accept(engine, *orders)
    await _run_until(engine, lambda: webhook.wait_until(lambda: len(webhook.delivered) == 300))
    assert 2 < webhook.max_in_flight["http://quick/hook"] <= 6
    assert Counter(d for _, d in webhook.delivered) == Counter(
        {str(o.delivery_id): 1 for o in orders}
    )


async def test_a_busy_destination_is_claimed_only_as_far_as_it_has_free_slots() -> None:
    gate = asyncio.Event()

    async def held(url: str, delivery_id: str) -> None:
        await gate.wait()

    webhook = FakeWebhook(held)
    engine, store, _, _ = make_engine(webhook=webhook, per_destination=2, per_destination_max=2)
    orders = [order("http://one/hook") for _ in range(40)]
    await accept(engine, *orders)

    async def released_when_two_wait() -> None:
        await webhook.wait_until(lambda: len(webhook.attempts) >= 2)
        await asyncio.sleep(0.05)  # the engine may claim again meanwhile: it must not send
        assert len(webhook.attempts) == 2
        gate.set()
        await webhook.wait_until(lambda: len(webhook.delivered) == 40)

    await _run_until(engine, released_when_two_wait)
    claims = Counter(store.claimed)
    # Claimed once while the destination was unknown, and at most once more when it had
    # a free slot: never claimed to wait for one.
    assert max(claims.values()) <= 2
    assert webhook.max_in_flight["http://one/hook"] == 2


class _NotOursAnyMore(FakeStore):
    """A renewal that finds none of the records claimed by us any more: settled by our own
    recorder while it ran, or taken over by another process."""

    async def renew(self, *, owner: str, ids, until):  # type: ignore[no-untyped-def]
        return Renewal(frozenset(), frozenset(ids))


def _record() -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=uuid.uuid4(), aggregate_id=uuid.uuid4(), aggregate_version=1,
        recipient_id=uuid.uuid4(), channel="webhook", purpose="alert", language="en",
        context={}, correlation_id=None, attempts=0, created_at=T0,
        give_up_at=T0 + timedelta(hours=1), destination_key=None, last_error_class=None,
    )  # fmt: skip


async def test_a_record_being_settled_is_not_reported_lost_by_the_heartbeat() -> None:
    claims = Claims(store=_NotOursAnyMore(), owner="me", service="test",  # type: ignore[arg-type]
                    lease=timedelta(seconds=1), heartbeat=timedelta(milliseconds=10),
                    clock=FakeClock())  # fmt: skip
    settling, taken_over = _record(), _record()
    claims.hold([settling, taken_over])
    claims.settling([settling.delivery_id])
    with structlog.testing.capture_logs() as logs:
        beat = asyncio.create_task(claims.heartbeat())
        await asyncio.sleep(0.1)
        beat.cancel()
    assert settling.delivery_id in claims  # ours until its settlement releases it
    assert taken_over.delivery_id not in claims  # really lost: dropped, never sent
    lost = [e["count"] for e in logs if e["event"] == "delivery.claims_lost"]
    assert lost == [1] * len(lost)
    assert lost


class _RenewalLog(_NotOursAnyMore):
    """Every renewal's ids; each renewed (ours and in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[set[uuid.UUID]] = []
        self.renewed = asyncio.Event()

    async def renew(self, *, owner: str, ids, until):  # type: ignore[no-untyped-def]
        self.asked.append(set(ids))
        self.renewed.set()
        return Renewal(frozenset(ids), frozenset())


async def _next_renewal(store: _RenewalLog, seen: int) -> set[uuid.UUID]:
    async with asyncio.timeout(30):
        while len(store.asked) <= seen:
            store.renewed.clear()
            await store.renewed.wait()
    return store.asked[seen]


async def test_the_heartbeat_renews_a_claim_only_once_half_its_lease_is_gone() -> None:
    """A claim settled within half its lease (nearly every one) is never renewed: each
    renewal rewrote its row. Before, every held claim was renewed on every beat."""
    clock, store = FakeClock(), _RenewalLog()
    claims = Claims(store=store, owner="me", service="test",  # type: ignore[arg-type]
                    lease=timedelta(seconds=10), heartbeat=timedelta(milliseconds=10),
                    clock=clock)  # fmt: skip
    young, old, unknown = _record(), _record(), _record()
    claims.hold([young], claimed_at=clock())
    claims.hold([old], claimed_at=clock() - timedelta(seconds=6))
    claims.hold([unknown])  # lease end not known: renewed on every beat, as before
    beat = asyncio.create_task(claims.heartbeat())
    try:
        first = await _next_renewal(store, 0)
        assert first == {old.delivery_id, unknown.delivery_id}
        # Renewed, their leases are whole again (and known): none is due on this clock.
        assert claims._renewable() == []
        clock.advance(6)
        seen = len(store.asked)
        later = await _next_renewal(store, seen)
        assert later == {young.delivery_id, old.delivery_id, unknown.delivery_id}
    finally:
        beat.cancel()
    assert all(r.delivery_id in claims for r in (young, old, unknown))
