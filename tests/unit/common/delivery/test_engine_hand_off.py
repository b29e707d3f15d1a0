"""Hand-off at accept: orders accepted while the engine runs are claimed in the accepting
transaction and sent once it commits, with no claim; rounds that only record final
outcomes claim nothing (`Lookout`)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from services.common.delivery import DeliveryEngine, DeliveryOrder, DeliveryRecord, Resolution
from services.common.delivery.insert_query import PENDING_COLUMNS
from services.common.delivery.lookout import Lookout
from services.common.delivery.metrics import PUT_BACK
from services.common.delivery.outcomes import Busy, Outcome
from tests.unit.common.delivery.fakes import (
    T0,
    FakeEmail,
    FakePlan,
    FakeStore,
    FakeWebhook,
    accept,
    committed,
    make_engine,
    open_session,
    order,
    until,
)


@asynccontextmanager
async def _running(engine: DeliveryEngine) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    while not engine.dispatching:  # noqa: ASYNC110 - the engine's own state, nothing to await
        await asyncio.sleep(0)
    try:
        yield
    finally:
        stop.set()
        await task


class _CountingPlan(FakePlan):
    """Counts the records of each `resolve_all` call; `broken` makes it raise."""

    def __init__(self, *, broken: bool = False) -> None:
        super().__init__()
        self.resolved: list[int] = []
        self.broken = broken

    async def resolve_all(
        self, session: Any, records: Sequence[DeliveryRecord]
    ) -> list[Resolution]:
        self.resolved.append(len(records))
        if self.broken:
            raise RuntimeError("plan bug")
        return await super().resolve_all(session, records)


async def test_an_order_accepted_while_running_is_sent_after_commit_without_a_claim() -> None:
    webhook = FakeWebhook()
    plan = _CountingPlan()
    engine, store, _, _ = make_engine(webhook=webhook, plan=plan)
    async with _running(engine):
        o = order("http://a/hook")
        session = await accept(engine, o, commit=False)
        # In the accepting transaction: claimed by this engine, resolved there.
        row = store.rows[o.delivery_id]
        assert (row.state, row.claimed_by) == ("sending", "engine-a")
        assert plan.resolved == [1]
        await asyncio.sleep(0)
        assert webhook.attempts == []  # nothing is sent before the commit
        committed(session)
        await until(lambda: store.state(o.delivery_id) == "delivered")
    assert store.claimed == []  # never claimed
    assert plan.resolved == [1]  # resolved once, at accept
    assert plan.hooks(o.delivery_id) == [("delivered", 1)]
    assert webhook.delivered == [("http://a/hook", str(o.delivery_id))]


async def test_a_hand_off_takes_only_the_free_slots_and_the_rest_waits_for_a_claim() -> None:
    webhook = FakeWebhook()
    engine, store, _plan, _ = make_engine(webhook=webhook, max_in_flight=2)
    async with _running(engine):
        orders = [order(f"http://l/{i}") for i in range(5)]
        session = await accept(engine, *orders, commit=False)
        states = Counter(store.state(o.delivery_id) for o in orders)
        assert states == Counter({"sending": 2, "pending": 3})
        committed(session)
        await until(lambda: all(store.state(o.delivery_id) == "delivered" for o in orders))
    assert Counter(d for _, d in webhook.delivered) == Counter(
        {str(o.delivery_id): 1 for o in orders}
    )
    assert len(store.claimed) == 3  # only the three that were not handed off


async def test_accepts_of_one_transaction_share_the_free_slots() -> None:
    # A consumer's batch accepts once per message before its one commit.
    webhook = FakeWebhook()
    engine, store, _plan, _ = make_engine(webhook=webhook, max_in_flight=2)
    async with _running(engine):
        first, second = [order("http://l/1")], [order("http://l/2"), order("http://l/3")]
        session = await accept(engine, *first, commit=False)
        await engine.accept_many(session, second)
        states = Counter(store.state(o.delivery_id) for o in first + second)
        assert states == Counter({"sending": 2, "pending": 1})
        committed(session)
        batch = first + second
        await until(lambda: all(store.state(o.delivery_id) == "delivered" for o in batch))
        # The next transaction starts with every slot free again.
        later = [order("http://l/4"), order("http://l/5")]
        await until(lambda: len(engine._claims) == 0)
        session = await accept(engine, *later, commit=False)
        assert {store.state(o.delivery_id) for o in later} == {"sending"}
        committed(session)
        await until(lambda: all(store.state(o.delivery_id) == "delivered" for o in later))
    assert len(store.claimed) == 1  # only the one order no slot was left for


def _held_at_one_slot() -> tuple[
    asyncio.Event, FakeWebhook, DeliveryEngine, FakeStore, list[DeliveryOrder]
]:
    """A destination with one slot whose sends wait for the gate, and three orders to it:
    (gate, webhook, engine, store, orders)."""
    gate = asyncio.Event()

    async def held(url: str, delivery_id: str) -> None:
        await gate.wait()

    webhook = FakeWebhook(held)
    engine, store, _, _ = make_engine(webhook=webhook, per_destination=1, per_destination_max=1)
    return gate, webhook, engine, store, [order("http://one/hook") for _ in range(3)]


async def test_a_busy_destination_puts_a_hand_off_back_and_each_is_sent_once() -> None:
    gate, webhook, engine, store, orders = _held_at_one_slot()
    async with _running(engine):
        await accept(engine, *orders)
        await webhook.wait_until(lambda: len(webhook.attempts) == 1)
        await until(lambda: sum(store.state(o.delivery_id) == "pending" for o in orders) == 2)
        gate.set()
        await until(lambda: all(store.state(o.delivery_id) == "delivered" for o in orders))
    assert webhook.max_in_flight["http://one/hook"] == 1
    assert Counter(d for _, d in webhook.delivered) == Counter(
        {str(o.delivery_id): 1 for o in orders}
    )


def _put_back(channel: str, reason: str) -> float:
    return PUT_BACK.labels("test", channel, reason)._value.get()  # type: ignore[no-any-return]


async def test_put_backs_are_counted_by_channel_and_reason() -> None:
    gate, _, engine, store, orders = _held_at_one_slot()
    busy, full = _put_back("webhook", "destination_busy"), _put_back("webhook", "engine_full")
    mail = _put_back("email", "destination_busy")
    async with _running(engine):
        await accept(engine, *orders)
        await until(lambda: sum(store.state(o.delivery_id) == "pending" for o in orders) == 2)
        # Handed off together: the one slot went to the first, the other two were put back.
        assert _put_back("webhook", "destination_busy") - busy == 2
        gate.set()
        await until(lambda: all(store.state(o.delivery_id) == "delivered" for o in orders))
    assert _put_back("webhook", "engine_full") == full
    assert _put_back("email", "destination_busy") == mail


async def test_a_plan_that_fails_at_accept_hands_nothing_off() -> None:
    plan = _CountingPlan(broken=True)
    engine, store, _, _ = make_engine(plan=plan)
    async with _running(engine):
        o = order("http://a/hook")
        await accept(engine, o, commit=False)
        assert store.state(o.delivery_id) == "pending"  # a claim takes it later


async def test_nothing_is_handed_off_when_hand_off_is_off_or_the_engine_is_not_running() -> None:
    engine, store, _, _ = make_engine(hand_off=False)
    async with _running(engine):
        o = order("http://a/hook")
        await accept(engine, o, commit=False)
        assert store.state(o.delivery_id) == "pending"
    idle, store, _, _ = make_engine()
    o = order("http://a/hook")
    await accept(idle, o)
    assert store.state(o.delivery_id) == "pending"
    assert await idle.pump() == 1  # claimed as before


async def test_a_hand_off_committed_while_stopping_is_left_to_its_lease() -> None:
    webhook = FakeWebhook()
    engine, store, _, _ = make_engine(webhook=webhook)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    while not engine.dispatching:  # noqa: ASYNC110 - the engine's own state, nothing to await
        await asyncio.sleep(0)
    o = order("http://a/hook")
    session = await accept(engine, o, commit=False)
    stop.set()
    await task
    committed(session)
    assert webhook.attempts == []
    assert (store.state(o.delivery_id), store.rows[o.delivery_id].claimed_by) == (
        "sending",
        "engine-a",
    )  # another engine takes it once the lease runs out


async def test_rounds_recording_final_outcomes_do_not_claim_until_something_may_be_due() -> None:
    webhook = FakeWebhook()
    engine, store, _, _ = make_engine(webhook=webhook)
    async with _running(engine):
        await until(lambda: store.claim_calls == 1)  # the start-up look
        looked, reads = store.transactions, store.next_due_calls
        orders = [order(f"http://l/{i}") for i in range(3)]
        for o in orders:  # one at a time: each its own outcome round
            await accept(engine, o)
            await until(lambda o=o: store.state(o.delivery_id) == "delivered")  # type: ignore[misc]
        assert store.claimed == []  # handed off
        assert store.transactions - looked == 3  # one outcome round per delivery
        # ... which claimed nothing and read no next-due time (the poll is 1 s away on a
        # clock that does not move).
        assert (store.claim_calls, store.next_due_calls) == (1, reads)


def _outcome(result: Any) -> Outcome:
    record = DeliveryRecord(
        delivery_id=order("x").delivery_id, aggregate_id=order("x").aggregate_id,
        aggregate_version=1, recipient_id=order("x").recipient_id, channel="webhook",
        purpose="alert", language="en", context={}, correlation_id=None, attempts=0,
        created_at=T0, give_up_at=T0 + timedelta(hours=1), destination_key=None,
        last_error_class=None,
    )  # fmt: skip
    return Outcome(record=record, result=result, at=T0)


def test_the_lookout_claims_when_woken_due_or_a_record_was_put_back() -> None:
    lookout = Lookout(timedelta(seconds=1))
    assert lookout.must_look([], T0, woken=False)  # never looked yet
    lookout.looked(None, T0, batch=[], full=False)
    assert lookout.at == T0 + timedelta(seconds=1)  # the poll
    assert not lookout.must_look([], T0, woken=False)
    assert lookout.must_look([], T0, woken=True)
    assert lookout.must_look([], T0 + timedelta(seconds=1), woken=False)
    busy = _outcome(Busy(T0))
    assert lookout.must_look([busy], T0, woken=False)  # a put-back is due again
    lookout.looked(T0 + timedelta(seconds=5), T0, batch=[busy], full=False)
    assert lookout.at == T0  # the put-back's due time, not the later one read
    lookout.looked(T0 + timedelta(milliseconds=300), T0, batch=[], full=False)
    assert lookout.at == T0 + timedelta(milliseconds=300)
    lookout.looked(None, T0, batch=[], full=True)
    assert lookout.at is None  # a full claim: there may be more at once


async def test_a_hand_off_reaches_the_sender_in_the_first_loop_turn_after_the_commit() -> None:
    # The commit's hand-over starts each send's task itself: no dispatch task in between.
    webhook = FakeWebhook()
    engine, store, _plan, _ = make_engine(webhook=webhook)
    async with _running(engine):
        o = order("http://a/hook")
        session = await accept(engine, o, commit=False)
        committed(session)
        assert webhook.attempts == []  # the send is a task of its own, not run in the commit
        await asyncio.sleep(0)  # one loop turn
        assert webhook.attempts == [("http://a/hook", str(o.delivery_id))]
        await until(lambda: store.state(o.delivery_id) == "delivered")
    assert store.renewals == 0  # a fresh claim is sent without renewing it


async def test_a_hand_off_committed_a_heartbeat_after_its_claim_is_renewed_before_it_is_sent() -> (
    None
):
    webhook = FakeWebhook()
    engine, store, _plan, clock = make_engine(webhook=webhook)
    async with _running(engine):
        o = order("http://a/hook")
        session = await accept(engine, o, commit=False)
        clock.advance(engine._config.heartbeat.total_seconds())  # a slow accepting transaction
        committed(session)
        await until(lambda: store.state(o.delivery_id) == "delivered")
    assert store.renewals == 1
    assert webhook.delivered == [("http://a/hook", str(o.delivery_id))]


async def test_a_late_hand_off_whose_claim_another_process_took_is_not_sent() -> None:
    webhook = FakeWebhook()
    engine, store, _plan, clock = make_engine(webhook=webhook)
    async with _running(engine):
        o = order("http://a/hook")
        session = await accept(engine, o, commit=False)
        clock.advance(engine._config.heartbeat.total_seconds())
        store.rows[o.delivery_id].claimed_by = "engine-b"  # its lease lapsed and was taken
        committed(session)
        await until(lambda: len(engine._claims) == 0)
    assert store.renewals == 1
    assert webhook.attempts == []


async def test_an_accept_carried_by_the_callers_statement_hands_off_what_it_inserted() -> None:
    """`prepare_accept`: the rows as the caller's statement inserts them (handed-off ones
    as this engine's claim); `finish` with the ids that went in hands only those off."""
    webhook = FakeWebhook()
    plan = _CountingPlan()
    engine, _store, _, _ = make_engine(webhook=webhook, plan=plan)
    async with _running(engine):
        o = order("http://a/hook")
        session = open_session()
        prepared = await engine.prepare_accept(session, [o])
        arrays = prepared.arrays("d_")
        assert set(arrays) == {f"d_{name}" for name in PENDING_COLUMNS}
        assert arrays["d_delivery_id"] == [str(o.delivery_id)]
        assert (arrays["d_state"], arrays["d_claimed_by"]) == (["sending"], ["engine-a"])
        assert plan.resolved == [1]  # resolved at accept, before the statement ran
        assert prepared.finish(session, [str(o.delivery_id)]) == 1
        committed(session)
        await webhook.wait_until(lambda: len(webhook.delivered) == 1)
    assert webhook.delivered == [("http://a/hook", str(o.delivery_id))]


async def test_an_accept_whose_statement_inserted_nothing_hands_nothing_off() -> None:
    """The caller's statement inserted no row (its notice had an alert already, or the
    delivery id was known): nothing is handed off, nothing is sent, no claim is held."""
    webhook = FakeWebhook()
    engine, _store, _, _ = make_engine(webhook=webhook)
    async with _running(engine):
        session = open_session()
        prepared = await engine.prepare_accept(session, [order("http://a/hook")])
        assert prepared.arrays("d_")["d_state"] == ["sending"]
        assert prepared.finish(session, ()) == 0
        committed(session)
        for _ in range(10):
            await asyncio.sleep(0)
        assert len(engine._claims) == 0
    assert webhook.attempts == []


async def test_slots_prepared_for_records_that_did_not_go_in_are_free_again() -> None:
    """A transaction's hand-offs never exceed the free slots, but records its statement did
    not insert hold none: a later accept of the same transaction may take them."""
    webhook = FakeWebhook()
    engine, store, _, _ = make_engine(webhook=webhook, max_in_flight=1)
    async with _running(engine):
        session = open_session()
        prepared = await engine.prepare_accept(session, [order("http://a/1")])
        assert prepared.finish(session, ()) == 0  # e.g. the notice had an alert already
        later = order("http://a/2")
        await engine.accept_many(session, [later])
        assert store.state(later.delivery_id) == "sending"  # handed off: the slot was free
        committed(session)
        await until(lambda: store.state(later.delivery_id) == "delivered")
    assert webhook.delivered == [("http://a/2", str(later.delivery_id))]


class _SpawningWebhook(FakeWebhook):
    """Writes its request's body from a task of its own, as aiohttp does on Python 3.11."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    async def send(self, url: str, payload: Any, *, delivery_id: str) -> int:
        self.events.append("webhook called")

        async def write_bytes() -> None:
            self.events.append("webhook body written")

        await asyncio.create_task(write_bytes())
        return await super().send(url, payload, delivery_id=delivery_id)


class _RecordingEmail(FakeEmail):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    async def send(
        self, *, to: str, subject: str, text: str, delivery_id: str, language: str = "en"
    ) -> None:
        self.events.append("email called")  # its composition and SMTP commands start here
        await super().send(
            to=to, subject=subject, text=text, delivery_id=delivery_id, language=language
        )


@pytest.mark.parametrize("email_first", [True, False])
async def test_a_hand_off_s_webhook_body_is_written_before_its_e_mail_starts(
    email_first: bool,
) -> None:
    events: list[str] = []
    engine, store, _, _ = make_engine(
        webhook=_SpawningWebhook(events), email=_RecordingEmail(events)
    )
    async with _running(engine):
        aggregate = uuid.uuid4()
        mail = order("spoc@example.org", channel="email", aggregate=aggregate)
        hook = order("http://a/hook", aggregate=aggregate)
        await accept(engine, *((mail, hook) if email_first else (hook, mail)))
        await until(
            lambda: {store.state(mail.delivery_id), store.state(hook.delivery_id)} == {"delivered"}
        )
    # Whatever the order accepted in: the webhook's attempt first, and its body task (a
    # turn of its own) before the e-mail's attempt, which yields that turn to it.
    assert events == ["webhook called", "webhook body written", "email called"]
