"""SMS use cases against the fakes: a reply acknowledges, a report lands on the timeline."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from services.common.delivery import DeliveryOrder, Failure
from services.common.delivery.handset import ReportEffect
from services.common.delivery.sms_reports import DeliveryReport, ReportStatus
from services.router import acknowledgement, alerting
from services.router.delivery import record_sms_report
from services.router.domain import DirectoryDocument, alert_id_for
from services.router.domain.sms import sms_code
from tests.unit.router.fakes import (
    SPOC,
    Clock,
    FakeDeps,
    FakeUnitOfWork,
    directory_document,
    make_deps,
    received,
    with_directory,
)
from tests.unit.router.test_delivery_plan import record_of

SPOC_NUMBER = "+15555550142"
STRANGER = "+15555550999"


def sms_only_spoc() -> DirectoryDocument:
    """The usual directory, the SPOC reachable by SMS only."""
    document = directory_document().model_dump(mode="json")
    document["people"][0]["channels"] = {"sms": SPOC_NUMBER}
    return DirectoryDocument.model_validate(document)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(tmp_path: Path, clock: Clock) -> FakeDeps:
    deps = make_deps(tmp_path, clock=clock)
    with_directory(deps.store, sms_only_spoc())
    return deps


async def open_one(deps: FakeDeps) -> uuid.UUID:
    notice = received()
    uow = FakeUnitOfWork(deps.store)
    await alerting.open_alert(uow, deps=deps, notice=notice)
    await uow.commit()
    return alert_id_for(notice.notice_id)


async def reply(deps: FakeDeps, sender: str, text: str) -> tuple[object, list[dict[str, object]]]:
    uow = FakeUnitOfWork(deps.store)
    with structlog.testing.capture_logs() as logs:
        outcome = await acknowledgement.acknowledge_by_sms(uow, deps=deps, sender=sender, text=text)
        await uow.commit()
    return outcome, logs


async def test_a_reply_1_from_the_spocs_number_acknowledges_with_method_sms(
    deps: FakeDeps,
) -> None:
    alert_id = await open_one(deps)

    outcome, _ = await reply(deps, SPOC_NUMBER, "1")

    assert outcome == acknowledgement.SmsReplyOutcome(alert_id=alert_id)
    alert = deps.store.alerts[alert_id]
    assert (alert.state, alert.acknowledged_by, alert.ack_method) == ("acknowledged", SPOC, "sms")
    (entry,) = deps.store.entries(alert_id, "acknowledged")
    assert entry.method == "sms"
    (event,) = deps.store.events("alert.acknowledged")
    assert event.method == "sms"


async def test_the_code_picks_the_alert_and_no_code_picks_the_latest(
    deps: FakeDeps, clock: Clock
) -> None:
    older = await open_one(deps)
    clock.advance(60)
    newer = await open_one(deps)

    outcome, _ = await reply(deps, SPOC_NUMBER, f"ok {sms_code(older)}")
    assert outcome == acknowledgement.SmsReplyOutcome(alert_id=older)
    assert deps.store.alerts[newer].state != "acknowledged"

    outcome, _ = await reply(deps, SPOC_NUMBER, "Sí")
    assert outcome == acknowledgement.SmsReplyOutcome(alert_id=newer)
    assert deps.store.alerts[newer].ack_method == "sms"


@pytest.mark.parametrize(
    ("sender", "text", "reason"),
    [
        (STRANGER, "1", "unknown_number"),
        (SPOC_NUMBER, "1 ZZZZ", "wrong_code"),
        (SPOC_NUMBER, "what is this?", "not_an_acknowledgement"),
    ],
)
async def test_a_reply_that_names_nothing_changes_nothing_and_logs_no_number(
    deps: FakeDeps, sender: str, text: str, reason: str
) -> None:
    alert_id = await open_one(deps)
    before = deps.store.alerts[alert_id]

    outcome, logs = await reply(deps, sender, text)

    assert outcome == acknowledgement.SmsReplyOutcome(ignored=reason)  # type: ignore[arg-type]
    assert deps.store.alerts[alert_id] == before
    assert deps.store.entries(alert_id, "acknowledged") == []
    (line,) = [entry for entry in logs if entry["event"] == "sms.reply_ignored"]
    assert line["reason"] == reason
    assert line["sender_tag"] == acknowledgement.number_tag(deps, sender)
    assert sender.lstrip("+") not in str(logs)


def _sms_order(deps: FakeDeps) -> DeliveryOrder:
    (order,) = [o for o in deps.store.orders if o.channel == "sms"]
    return order


def _report(order: DeliveryOrder, status: ReportStatus) -> DeliveryReport:
    return DeliveryReport(
        delivery_id=str(order.delivery_id),
        status=status,
        kannel_type={"accepted": 8, "delivered": 1, "failed": 2}[status],
        reason="rejected" if status == "failed" else None,
        smsc_error=None,
        reported_at=None,
    )


async def record(deps: FakeDeps, report: DeliveryReport) -> None:
    uow = FakeUnitOfWork(deps.store)
    await record_sms_report(uow, deps=deps, report=report)
    await uow.commit()


async def test_accepted_and_delivered_reports_go_on_the_timeline(deps: FakeDeps) -> None:
    alert_id = await open_one(deps)
    order = _sms_order(deps)
    for status in ("accepted", "delivered"):
        deps.store.report_effects[str(order.delivery_id)] = ReportEffect(
            record_of(order), status, fresh=True
        )
        await record(deps, _report(order, status))

    entries = deps.store.entries(alert_id, "delivery_report")
    assert [(e.detail["status"], e.channel) for e in entries] == [
        ("accepted", "sms"),
        ("delivered", "sms"),
    ]
    assert {e.delivery_id for e in entries} == {order.delivery_id}


async def test_a_repeated_report_writes_nothing(deps: FakeDeps) -> None:
    alert_id = await open_one(deps)
    order = _sms_order(deps)
    deps.store.report_effects[str(order.delivery_id)] = ReportEffect(
        record_of(order), "accepted", fresh=False
    )
    await record(deps, _report(order, "accepted"))
    assert deps.store.entries(alert_id, "delivery_report") == []


async def test_a_handset_failure_with_a_send_left_is_a_failed_attempt_and_wakes_the_engine(
    deps: FakeDeps, clock: Clock
) -> None:
    alert_id = await open_one(deps)
    order = _sms_order(deps)
    woken: list[bool] = []
    deps = FakeDeps(**{**deps.__dict__, "wake_delivery": lambda: woken.append(True)})
    failure = Failure("rejected", False, False, 1, clock(), clock() + timedelta(seconds=30), "k")
    deps.store.report_effects[str(order.delivery_id)] = ReportEffect(
        record_of(order, attempts=1), "failed", fresh=True, failure=failure
    )

    await record(deps, _report(order, "failed"))

    (failed,) = deps.store.entries(alert_id, "delivery_failed")
    assert failed.detail["final"] is False
    assert woken == [True]
    assert deps.store.alerts[alert_id].state == "triggered"


async def test_a_final_handset_failure_of_the_only_channel_escalates_now(
    deps: FakeDeps, clock: Clock
) -> None:
    alert_id = await open_one(deps)
    order = _sms_order(deps)
    woken: list[bool] = []
    deps = FakeDeps(**{**deps.__dict__, "wake_escalation": lambda: woken.append(True)})
    clock.advance(5)
    failure = Failure("rejected", False, True, 2, clock(), None, "k")
    deps.store.report_effects[str(order.delivery_id)] = ReportEffect(
        record_of(order, attempts=2), "failed", fresh=True, failure=failure
    )

    await record(deps, _report(order, "failed"))

    alert = deps.store.alerts[alert_id]
    assert alert.next_fire_at == clock()  # the backup's step is due now, not in 60 s
    (failed,) = deps.store.entries(alert_id, "delivery_failed")
    assert failed.detail["final"] is True
    assert failed.detail["step_unreachable"] is True
    assert woken == [True]
    (report,) = deps.store.entries(alert_id, "delivery_report")
    assert report.detail["status"] == "failed"


async def test_a_report_for_an_unknown_delivery_is_logged_only(deps: FakeDeps) -> None:
    alert_id = await open_one(deps)
    order = _sms_order(deps)
    with structlog.testing.capture_logs() as logs:
        await record(deps, _report(order, "delivered"))
    assert deps.store.entries(alert_id, "delivery_report") == []
    assert [e["event"] for e in logs] == ["sms.report_for_unknown_delivery"]
