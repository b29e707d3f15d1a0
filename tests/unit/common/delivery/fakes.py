"""In-memory stand-ins for the delivery engine's store, plan and senders (unit tests)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.db import _run_after_commit
from services.common.delivery import (
    BaseDeliveryPlan,
    Delivered,
    DeliveryEngine,
    DeliveryOrder,
    DeliveryRecord,
    EmailOutbound,
    EngineConfig,
    Failure,
    Outbound,
    SenderRegistry,
    Skip,
    SmsOutbound,
    SmsReceipt,
    WebhookOutbound,
)
from services.common.delivery.store import Accepted, Renewal, Settlement

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def to(self, when: datetime) -> None:
        self.now = max(self.now, when)


@dataclass
class Row:
    record: DeliveryRecord
    state: str
    next_attempt_at: datetime
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    last_error_class: str | None = None
    delivered_at: datetime | None = None
    segments: int | None = None


class FakeTx:
    """A unit of work over the fake store: staged changes apply on commit."""

    def __init__(self) -> None:
        self.session: Any = None
        self.staged: list[Callable[[], None]] = []
        self.effects: list[Callable[[], None]] = []

    def after_commit(self, effect: Callable[[], None]) -> None:
        self.effects.append(effect)

    async def commit(self) -> None:
        await asyncio.sleep(0)  # a real commit waits for the database: others run meanwhile
        for change in self.staged:
            change()
        for effect in self.effects:
            effect()
        self.staged.clear()


class FakeStore:
    """The engine's persistence, in a dict, with the SQL store's claim and lease rules."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Row] = {}
        self.inserts = 0  # insert statements
        self.renewals = 0
        self.claimed: list[uuid.UUID] = []  # every claim of every record, in order
        self.settle_batches: list[int] = []  # outcomes per settling transaction
        self.transactions = 0
        self.next_due_alone = 0  # "when is the next one due" asked outside a transaction
        self.claim_calls = 0  # claims made, whatever they took
        self.next_due_calls = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTx]:
        self.transactions += 1
        yield FakeTx()

    async def insert_many(
        self, session: Any, orders: Sequence[Accepted], *, now: datetime, owner: str | None = None
    ) -> set[uuid.UUID]:
        self.inserts += 1
        inserted: set[uuid.UUID] = set()
        for accepted in orders:
            order = accepted.order
            if order.delivery_id in self.rows:
                continue
            record = DeliveryRecord(
                delivery_id=order.delivery_id,
                aggregate_id=order.aggregate_id,
                aggregate_version=order.aggregate_version,
                recipient_id=order.recipient_id,
                channel=order.channel,
                purpose=order.purpose,
                language=order.language,
                context=dict(order.context),
                correlation_id=order.correlation_id,
                attempts=0,
                created_at=now,
                give_up_at=accepted.give_up_at,
                destination_key=None,
                last_error_class=None,
            )
            row = Row(record, "pending", order.not_before or now)
            if accepted.claimed_until is not None and owner is not None:
                # A hand-off: inserted as the accepting engine's claim.
                row.state, row.claimed_by = "sending", owner
                row.claimed_until = accepted.claimed_until
            self.rows[order.delivery_id] = row
            inserted.add(order.delivery_id)
        return inserted

    async def cancel(
        self,
        session: Any,
        *,
        aggregate_id: uuid.UUID,
        now: datetime,
        recipient_id: uuid.UUID | None = None,
        purposes: Sequence[str] | None = None,
    ) -> int:
        count = 0
        for row in self.rows.values():
            r = row.record
            if r.aggregate_id != aggregate_id or row.state != "pending":
                continue
            if recipient_id is not None and r.recipient_id != recipient_id:
                continue
            if purposes is not None and r.purpose not in purposes:
                continue
            row.state = "cancelled"
            count += 1
        return count

    def _due(self, row: Row, now: datetime) -> bool:
        if row.state == "pending":
            return row.next_attempt_at <= now
        return row.state == "sending" and row.claimed_until is not None and row.claimed_until < now

    async def claim(
        self,
        *,
        owner: str,
        now: datetime,
        lease_until: datetime,
        limit: int,
        exclude_keys: Sequence[str] = (),
        room: Mapping[str, int] | None = None,
        default_room: int | None = None,
        read: Any = None,
        tx: Any = None,
    ) -> list[DeliveryRecord]:
        self.claim_calls += 1
        due = [
            row
            for row in self.rows.values()
            if self._due(row, now) and row.record.destination_key not in set(exclude_keys)
        ]
        due.sort(key=lambda r: r.next_attempt_at)
        claimed: list[DeliveryRecord] = []
        taken: dict[str, int] = {}
        for row in due:
            if len(claimed) == limit:
                break
            key = row.record.destination_key
            if key is not None and (room or default_room is not None):
                cap = (room or {}).get(key, default_room if default_room is not None else limit)
                if taken.get(key, 0) >= cap:
                    continue
                taken[key] = taken.get(key, 0) + 1
            row.state, row.claimed_by, row.claimed_until = "sending", owner, lease_until
            claimed.append(row.record)
        self.claimed.extend(r.delivery_id for r in claimed)
        if read is not None and claimed:
            await read(None, claimed)
        return claimed

    async def renew(self, *, owner: str, ids: Sequence[uuid.UUID], until: datetime) -> Renewal:
        self.renewals += 1
        renewed, lost = set(), set()
        for i in ids:
            row = self.rows.get(i)
            if row and row.claimed_by == owner and row.state == "sending":
                row.claimed_until = until
                renewed.add(i)
            else:
                lost.add(i)
        return Renewal(frozenset(renewed), frozenset(lost))

    async def settle_many(
        self,
        tx: FakeTx,
        *,
        owner: str,
        settlements: Sequence[Settlement],
        read: object = None,
    ) -> set[uuid.UUID]:
        self.settle_batches.append(len(settlements))
        return {s.delivery_id for s in settlements if self._settle(tx, owner, s)}

    def _settle(self, tx: FakeTx, owner: str, settlement: Settlement) -> bool:
        row = self.rows[settlement.delivery_id]
        if row.claimed_by != owner or row.state != "sending":
            return False

        def apply() -> None:
            row.state = settlement.state
            row.claimed_by = row.claimed_until = None
            changes: dict[str, Any] = {}
            if settlement.attempted:
                changes["attempts"] = row.record.attempts + 1
            if settlement.destination_key is not None:
                changes["destination_key"] = settlement.destination_key
            if settlement.error_class is not None:
                row.last_error_class = settlement.error_class
                changes["last_error_class"] = settlement.error_class
            if settlement.next_attempt_at is not None:
                row.next_attempt_at = settlement.next_attempt_at
            if settlement.state == "delivered":
                row.delivered_at = settlement.at
            if settlement.segments is not None:
                row.segments = settlement.segments
            row.record = replace(row.record, **changes)

        tx.staged.append(apply)
        return True

    async def next_due(self, tx: Any = None) -> datetime | None:
        self.next_due_calls += 1
        if tx is None:
            self.next_due_alone += 1
        times = [r.next_attempt_at for r in self.rows.values() if r.state == "pending"]
        times += [
            r.claimed_until
            for r in self.rows.values()
            if r.state == "sending" and r.claimed_until is not None
        ]
        return min(times) if times else None

    def state(self, delivery_id: uuid.UUID) -> str:
        return self.rows[delivery_id].state


@dataclass
class FakePlan(BaseDeliveryPlan):
    """Resolves from `context` (url / to) and records every hook call."""

    calls: list[tuple[str, uuid.UUID, Any]] = field(default_factory=list)
    skip: set[uuid.UUID] = field(default_factory=set)
    wrong_channel: set[uuid.UUID] = field(default_factory=set)
    fail_hook: str | None = None
    give_up: timedelta = timedelta(minutes=15)

    def give_up_after(self, order: DeliveryOrder) -> timedelta:
        return self.give_up

    async def resolve(self, session: Any, record: DeliveryRecord) -> Outbound | Skip:
        if record.delivery_id in self.skip:
            return Skip("acknowledged")
        address = str(record.context["address"])
        if str(record.channel) == "sms":
            return SmsOutbound(to=address, text="t")
        if record.channel == "webhook" and record.delivery_id not in self.wrong_channel:
            return WebhookOutbound(url=address, payload={"id": str(record.delivery_id)})
        return EmailOutbound(to=address, subject="s", text="t")

    def _note(self, hook: str, record: DeliveryRecord, detail: Any) -> None:
        if hook == self.fail_hook:
            raise RuntimeError("hook bug")
        self.calls.append((hook, record.delivery_id, detail))

    async def on_delivered(self, tx: Any, record: DeliveryRecord, result: Delivered) -> None:
        self._note("delivered", record, result.attempts)

    async def on_attempt_failed(self, tx: Any, record: DeliveryRecord, failure: Failure) -> None:
        self._note("attempt_failed", record, failure.reason)

    async def on_failed(self, tx: Any, record: DeliveryRecord, failure: Failure) -> None:
        self._note("failed", record, failure.reason)

    async def on_skipped(self, tx: Any, record: DeliveryRecord, skip: Skip) -> None:
        self._note("skipped", record, skip.reason)

    def hooks(self, delivery_id: uuid.UUID) -> list[tuple[str, Any]]:
        return [(hook, detail) for hook, i, detail in self.calls if i == delivery_id]


Behaviour = Callable[[str, str], Awaitable[None]]


class FakeWebhook:
    """Records (url, delivery id) of every attempt; `behaviour` decides what happens."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.attempts: list[tuple[str, str]] = []
        self.delivered: list[tuple[str, str]] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self._behaviour = behaviour
        self.changed = asyncio.Event()  # set on every attempt and delivery

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.changed.clear()
            await self.changed.wait()

    async def send(self, url: str, payload: Mapping[str, Any], *, delivery_id: str) -> int:
        self.attempts.append((url, delivery_id))
        self.changed.set()
        self.in_flight[url] = self.in_flight.get(url, 0) + 1
        self.max_in_flight[url] = max(self.max_in_flight.get(url, 0), self.in_flight[url])
        try:
            if self._behaviour is not None:
                await self._behaviour(url, delivery_id)
        finally:
            self.in_flight[url] -= 1
        self.delivered.append((url, delivery_id))
        self.changed.set()
        return 204

    async def close(self) -> None:
        return None


class FakeSms:
    """Accepts every text and answers with the gateway's receipt."""

    def __init__(self, segments: int = 2) -> None:
        self.sent: list[str] = []
        self._segments = segments

    async def send(self, *, to: str, text: str, delivery_id: str) -> SmsReceipt:
        self.sent.append(delivery_id)
        return SmsReceipt(encoding="GSM-7", segments=self._segments)

    async def close(self) -> None:
        return None


class FakeEmail:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(
        self, *, to: str, subject: str, text: str, delivery_id: str, language: str = "en"
    ) -> None:
        self.sent.append({"to": to, "subject": subject, "delivery_id": delivery_id})

    async def close(self) -> None:
        return None


def order(address: str, *, channel: str = "webhook", aggregate: uuid.UUID | None = None) -> Any:
    return DeliveryOrder(
        delivery_id=uuid.uuid4(),
        aggregate_id=aggregate or uuid.uuid4(),
        aggregate_version=1,
        recipient_id=uuid.uuid4(),
        channel=channel,  # type: ignore[arg-type]
        purpose="alert",
        context={"address": address},
    )


def make_engine(
    *,
    webhook: FakeWebhook | None = None,
    email: FakeEmail | None = None,
    sms: FakeSms | None = None,
    plan: FakePlan | None = None,
    clock: FakeClock | None = None,
    store: FakeStore | None = None,
    owner: str = "engine-a",
    **config: Any,
) -> tuple[DeliveryEngine, FakeStore, FakePlan, FakeClock]:
    import random

    store = store or FakeStore()
    plan = plan or FakePlan()
    clock = clock or FakeClock()
    engine = DeliveryEngine(
        store=store,  # type: ignore[arg-type]
        senders=SenderRegistry(
            webhook=webhook or FakeWebhook(), email=email or FakeEmail(), sms=sms
        ),
        plan=plan,
        service="test",
        destination_secret=b"k",
        config=EngineConfig(**config),
        clock=clock,
        rng=random.Random(7),
        owner_id=owner,
    )
    return engine, store, plan, clock


async def accept(engine: DeliveryEngine, *orders: DeliveryOrder, commit: bool = True) -> Any:
    """Accept `orders` in a transaction that commits (its after-commit effects run: the
    wake-up, a hand-off's dispatch), or, `commit=False`, not yet (`committed(session)`)."""
    session = _NoSession()
    await engine.accept_many(session, orders)  # type: ignore[arg-type]
    if commit:
        committed(session)
    return session


def open_session() -> Any:
    """A session as the engine sees one (for `prepare_accept`), committed by `committed`."""
    return _NoSession()


def committed(session: Any) -> None:
    """The accepting transaction of `accept(..., commit=False)` commits now."""
    _run_after_commit(session)


class _NoSession:
    """Enough of a session for `after_commit` (which stores the effect in `info`)."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}


async def until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    """Until `predicate` holds (the engine's or the store's own state), within `timeout` s."""

    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - in-memory state, nothing to await
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout)
