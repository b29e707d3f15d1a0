"""The SMS gateway's delivery reports on a bulletin, with in-memory fakes."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

from schemas.bulletins import BulletinDeliveryFailed
from services.common.delivery import DeliveryRecord, Failure
from services.common.delivery.handset import ReportEffect
from services.common.delivery.sms_reports import DeliveryReport, ReportStatus
from services.rumor_control.delivery.reports import record_sms_report
from services.rumor_control.deps import RumorControlDeps
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store


def _record(clock: FakeClock) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=uuid.uuid4(), aggregate_id=uuid.uuid4(), aggregate_version=1,
        recipient_id=uuid.uuid4(), channel="sms", purpose="bulletin", language="es",
        context={"status": "Actual"}, correlation_id=None, attempts=1, created_at=clock(),
        give_up_at=clock() + timedelta(hours=1), destination_key=None, last_error_class=None,
    )  # fmt: skip


def _report(record: DeliveryRecord, status: ReportStatus) -> DeliveryReport:
    return DeliveryReport(
        delivery_id=str(record.delivery_id), status=status, kannel_type=1,
        reason="rejected" if status == "failed" else None, smsc_error=None, reported_at=None,
    )  # fmt: skip


def _failure(clock: FakeClock, *, final: bool) -> Failure:
    return Failure(
        reason="rejected", permanent=False, final=final, attempts=1, at=clock(),
        retry_at=None if final else clock() + timedelta(seconds=30), destination_key=None,
    )  # fmt: skip


async def _record_report(deps: RumorControlDeps, store: Store, report: DeliveryReport) -> None:
    async with FakeUnitOfWork(store) as uow:
        await record_sms_report(uow, deps=deps, report=report)
        await uow.commit()


async def test_a_delivered_report_goes_on_the_bulletins_timeline_without_an_event(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    record = _record(clock)
    report = _report(record, "delivered")
    store.report_effects[report.delivery_id] = ReportEffect(record, "delivered", fresh=True)
    await _record_report(deps, store, report)
    assert store.actions(record.aggregate_id) == ["delivery_report"]
    (step,) = store.timeline
    assert step.detail["status"] == "delivered"
    assert step.detail["delivery_id"] == str(record.delivery_id)
    assert not store.outbox


async def test_a_repeated_or_unknown_report_writes_nothing(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    record = _record(clock)
    repeated = _report(record, "accepted")
    store.report_effects[repeated.delivery_id] = ReportEffect(record, "accepted", fresh=False)
    await _record_report(deps, store, repeated)
    await _record_report(deps, store, _report(_record(clock), "delivered"))
    assert len(store.applied_reports) == 2
    assert not store.timeline
    assert not store.outbox


async def test_a_handset_failure_is_retried_and_wakes_the_engine(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    woken: list[bool] = []
    deps = replace(deps, wake_delivery=lambda: woken.append(True))
    record = _record(clock)
    report = _report(record, "failed")
    store.report_effects[report.delivery_id] = ReportEffect(
        record, "failed", fresh=True, failure=_failure(clock, final=False)
    )
    await _record_report(deps, store, report)
    assert store.actions(record.aggregate_id) == ["delivery_report", "delivery_failed"]
    (event,) = store.events(BulletinDeliveryFailed)
    assert (event.channel, event.reason, event.final) == ("sms", "rejected", False)
    assert woken == [True]


async def test_a_final_handset_failure_fails_the_delivery_for_good(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    woken: list[bool] = []
    deps = replace(deps, wake_delivery=lambda: woken.append(True))
    record = _record(clock)
    report = _report(record, "failed")
    store.report_effects[report.delivery_id] = ReportEffect(
        record, "failed", fresh=True, failure=_failure(clock, final=True)
    )
    await _record_report(deps, store, report)
    (event,) = store.events(BulletinDeliveryFailed)
    assert event.final is True
    assert store.timeline[-1].detail["final"] is True
    assert woken == []  # nothing left to send
