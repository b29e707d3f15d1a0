"""The plan's read carried by the settling statement (`SettleRead`): what the recorder
asks the store to read with a batch, and when it asks for nothing."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from services.common.delivery import (
    BaseDeliveryPlan,
    Delivered,
    DeliveryRecord,
    Failure,
    Settled,
    SettleRead,
)
from services.common.delivery.outcomes import Busy, Outcome, OutcomeRecorder
from services.common.delivery.settle_query import SettleCarry
from services.common.delivery.store import Settlement
from tests.unit.common.delivery.fakes import T0, FakeTx


class _Store:
    """Holds every record; keeps the `read` each settling was asked to carry."""

    def __init__(self) -> None:
        self.reads: list[SettleRead | None] = []

    def transaction(self) -> object:
        raise NotImplementedError

    async def settle_many(
        self,
        tx: object,
        *,
        owner: str,
        settlements: Sequence[Settlement],
        read: SettleRead | None = None,
    ) -> set[uuid.UUID]:
        self.reads.append(read)
        return {s.delivery_id for s in settlements}


class _Plan(BaseDeliveryPlan):
    settle_read = SettleRead("SELECT 1 WHERE :read_ids IS NOT NULL", "test.read")


def _record(aggregate_id: uuid.UUID) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=uuid.uuid4(), aggregate_id=aggregate_id, aggregate_version=1,
        recipient_id=uuid.uuid4(), channel="webhook", purpose="alert", language="en",
        context={}, correlation_id=None, attempts=0, created_at=T0,
        give_up_at=T0 + timedelta(hours=1), destination_key=None, last_error_class=None,
    )  # fmt: skip


def _recorder(store: _Store) -> OutcomeRecorder:
    return OutcomeRecorder(
        store=store,  # type: ignore[arg-type]
        plan=_Plan(),
        owner="me",
        service="test",
        released=lambda _ids: None,
    )


def _delivered(record: DeliveryRecord) -> Outcome:
    return Outcome(
        record=record, result=Delivered(attempts=1, delivered_at=T0, destination_key=None), at=T0
    )


async def test_the_batch_reads_the_aggregates_the_plan_hears_of_once_each() -> None:
    store = _Store()
    first, second, busy = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    batch = [
        _delivered(_record(first)),
        _delivered(_record(first)),
        _delivered(_record(second)),
        Outcome(record=_record(busy), result=Busy(T0), at=T0),
    ]

    await _recorder(store).write(FakeTx(), batch)  # type: ignore[arg-type]

    [read] = store.reads
    assert read is not None
    assert read.key == "test.read"
    assert read.ids == tuple(sorted((str(first), str(second))))


async def test_busy_put_backs_alone_and_a_write_without_hooks_read_nothing() -> None:
    store = _Store()
    recorder = _recorder(store)
    busy = Outcome(record=_record(uuid.uuid4()), result=Busy(T0), at=T0)

    await recorder.write(FakeTx(), [busy])  # type: ignore[arg-type]
    await recorder.write(FakeTx(), [_delivered(_record(uuid.uuid4()))], hooks=False)  # type: ignore[arg-type]

    assert store.reads == [None, None]


async def test_a_plan_that_reads_its_finals_itself_has_them_left_out_of_the_read() -> None:
    store = _Store()
    recorder = _recorder(store)
    recorder._plan.settle_read = SettleRead("SELECT 1", "test.read", finals=False)  # type: ignore[misc]
    delivered, failed, both = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    final = Failure(
        reason="http_4xx", permanent=True, final=True, attempts=1, at=T0, retry_at=None,
        destination_key=None,
    )  # fmt: skip
    batch = [
        _delivered(_record(delivered)),
        Outcome(record=_record(failed), result=final, at=T0),
        Outcome(record=_record(both), result=final, at=T0),
        _delivered(_record(both)),
    ]

    await recorder.write(FakeTx(), batch)  # type: ignore[arg-type]
    await recorder.write(FakeTx(), batch[1:2])  # type: ignore[arg-type]

    # The final failure's alert is read only where another outcome names it; a batch of
    # finals alone reads nothing.
    first, second = store.reads
    assert first is not None
    assert first.ids == tuple(sorted((str(delivered), str(both))))
    assert second is None


class _Statement:
    """Stands for the carried statement: answers that it settled `held`."""

    def __init__(self, held: Sequence[uuid.UUID]) -> None:
        self.held = [str(i) for i in held]
        self.values: list[Mapping[str, Any]] = []

    async def fetchrow(self, _session: object, values: Mapping[str, Any], *, lone: bool) -> Any:
        assert lone
        self.values.append(values)
        return {"settled_ids": self.held}


class _CarryingPlan(BaseDeliveryPlan):
    def __init__(self, statement: _Statement) -> None:
        self.statement = statement
        self.asked: list[list[Settled]] = []
        self.finished: list[frozenset[str]] = []
        self.hooked: list[Settled] = []

    async def carry_settled(self, tx: object, outcomes: Sequence[Settled]) -> SettleCarry:
        self.asked.append(list(outcomes))
        return SettleCarry(self.statement, {"p": 1}, lambda _row, held: self.finished.append(held))  # type: ignore[arg-type]

    async def on_outcomes(self, tx: object, outcomes: Sequence[Settled]) -> None:
        self.hooked.extend(outcomes)


async def test_a_round_that_writes_alone_carries_the_plans_writes_in_the_settle() -> None:
    kept, lost = _record(uuid.uuid4()), _record(uuid.uuid4())
    statement = _Statement([kept.delivery_id])
    plan = _CarryingPlan(statement)
    store = _Store()
    recorder = OutcomeRecorder(
        store=store,  # type: ignore[arg-type]
        plan=plan, owner="me", service="test", released=lambda _ids: None,
    )  # fmt: skip
    tx = FakeTx()

    await recorder.write(tx, [_delivered(kept), _delivered(lost)], alone=True)  # type: ignore[arg-type]

    # Both asked of (neither settled yet); only the one the statement settled is finished.
    assert [len(asked) for asked in plan.asked] == [2]
    assert plan.finished == [frozenset({str(kept.delivery_id)})]
    assert store.reads == []  # no settle of the store's, no hook in a transaction
    assert plan.hooked == []
    [values] = statement.values
    assert values["p"] == 1
    assert sorted(values["ids"]) == sorted(str(r.delivery_id) for r in (kept, lost))


async def test_a_round_that_claims_too_or_puts_back_keeps_the_transaction() -> None:
    plan = _CarryingPlan(_Statement([]))
    store = _Store()
    recorder = OutcomeRecorder(
        store=store,  # type: ignore[arg-type]
        plan=plan, owner="me", service="test", released=lambda _ids: None,
    )  # fmt: skip
    busy = Outcome(record=_record(uuid.uuid4()), result=Busy(T0), at=T0)

    await recorder.write(FakeTx(), [_delivered(_record(uuid.uuid4()))])  # type: ignore[arg-type]
    await recorder.write(FakeTx(), [busy, _delivered(_record(uuid.uuid4()))], alone=True)  # type: ignore[arg-type]

    assert plan.asked == []
    assert len(store.reads) == 2
    assert len(plan.hooked) == 2
