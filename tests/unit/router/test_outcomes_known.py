"""An outcome batch decided from its records alone says what the alerts' read said.

The carried round no longer reads its alerts when every record names its notice and
step (`services/router/delivery/known.py`). These tests hold the two ways of deciding
side by side, on records ordered the way `notify` orders them: the same timeline
entries, the same events, the same change under the same guard, and a read wherever a
record cannot say what the read gives.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from services.common.delivery import Delivered, DeliveryOrder, DeliveryRecord, Settled, Skip
from services.router import alerting
from services.router.delivery.known import decide_known, known_subject
from services.router.delivery.outcomes import decide_outcomes
from services.router.domain import AlertRecord, alert_id_for, mark_delivered
from services.router.repository.alert_settled import CarriedWrites, carried_writes
from tests.unit.router.fakes import (
    NOW,
    SPOC,
    Clock,
    FakeDeps,
    FakeUnitOfWork,
    make_deps,
    received,
    with_directory,
)
from tests.unit.router.test_delivery_plan import failure, record_of

# Outcomes are decided a moment after the alert was opened (at NOW).
LATER = NOW + timedelta(seconds=5)


@pytest.fixture
def deps(tmp_path: Path) -> FakeDeps:
    deps = make_deps(tmp_path, clock=Clock())
    with_directory(deps.store)
    return deps


async def _opened(deps: FakeDeps) -> tuple[AlertRecord, list[DeliveryRecord]]:
    """A new alert and the records the engine would claim for its orders."""
    notice = received()
    uow = FakeUnitOfWork(deps.store)
    await alerting.open_alert(uow, deps=deps, notice=notice)
    await uow.commit()
    alert = deps.store.alerts[alert_id_for(notice.notice_id)]
    orders: list[DeliveryOrder] = [o for o in deps.store.orders if o.recipient_id == SPOC]
    return alert, [record_of(order) for order in orders]


def _read(alert: AlertRecord, outcomes: list[Settled]) -> CarriedWrites:
    """What the carried round decides from the alert as read."""
    writes = decide_outcomes({alert.id: alert}, outcomes, now=LATER)
    carried = carried_writes(marks=writes.marks, notes=writes.notes, observers=writes.observers)
    assert carried is not None
    return carried


def _said(writes: CarriedWrites) -> tuple[object, ...]:
    """Everything the writes put in the database, in order (not the after-commit lines)."""
    return (
        [(alert_id, entry, record.delivery_id) for alert_id, entry, record in writes.entries],
        [(p.event, p.correlation_id, record.delivery_id) for p, record in writes.events],
        [(alert_id, record.delivery_id) for alert_id, record in writes.marks],
    )


async def test_a_record_names_its_notice_and_step(deps: FakeDeps) -> None:
    alert, records = await _opened(deps)

    for record in records:
        subject = known_subject(record)
        assert subject is not None
        assert (subject.id, subject.notice_id, subject.status, subject.step) == (
            alert.id,
            alert.notice_id,
            alert.status,
            alert.step,
        )


async def test_delivered_failed_and_skipped_say_what_the_read_says(deps: FakeDeps) -> None:
    alert, records = await _opened(deps)
    webhook, email = records
    delivered = Settled(webhook, Delivered(attempts=1, delivered_at=NOW, destination_key="k"))
    failed = Settled(email, failure("http_5xx", attempts=1, final=False, at=NOW))
    for outcomes in ([delivered], [failed], [delivered, failed], [Settled(email, Skip("x"))]):
        known = decide_known(outcomes, now=LATER)

        assert known is not None
        read = _read(alert, outcomes)
        assert _said(known) == _said(read)
        assert known.change == read.change
        assert [r.delivery_id for r, _ in known.observers] == [
            r.delivery_id for r, _ in read.observers
        ]


async def test_the_change_is_the_one_mark_delivered_decides(deps: FakeDeps) -> None:
    alert, (webhook, _) = await _opened(deps)
    mark = mark_delivered(alert, notice_version=webhook.aggregate_version, at=LATER)
    assert mark is not None

    outcome = Settled(webhook, Delivered(attempts=1, delivered_at=NOW, destination_key="k"))
    known = decide_known([outcome], now=LATER)

    assert known is not None
    columns = (("state", "delivered"), ("updated_at", LATER))
    assert known.change == (frozenset({"triggered"}), 1, columns)
    assert known.change == _read(alert, [outcome]).change


async def test_an_alert_past_triggered_is_asked_anyway_and_left_to_the_guard(
    deps: FakeDeps,
) -> None:
    alert, (webhook, _) = await _opened(deps)
    acknowledged = replace(alert, state="acknowledged")
    outcome = Settled(webhook, Delivered(attempts=1, delivered_at=NOW, destination_key="k"))

    known = decide_known([outcome], now=LATER)
    read = _read(acknowledged, [outcome])

    # The read decides not to ask; unread, the guard (triggered at version 1) refuses in
    # SQL. Either way the entry and the event are written.
    assert read.marks == []
    assert read.change is None
    assert known is not None
    assert known.change is not None
    assert known.change[0] == frozenset({"triggered"})
    assert _said(known)[:2] == _said(read)[:2]


async def test_a_record_that_does_not_name_its_notice_has_its_alert_read(
    deps: FakeDeps,
) -> None:
    _, (webhook, email) = await _opened(deps)
    older = replace(webhook, context={k: v for k, v in webhook.context.items() if k != "notice_id"})
    delivered = Delivered(attempts=1, delivered_at=NOW, destination_key="k")

    assert known_subject(older) is None
    assert decide_known([Settled(older, delivered), Settled(email, delivered)], now=LATER) is None


async def test_a_cancellation_has_its_alert_read(deps: FakeDeps) -> None:
    _, (webhook, _) = await _opened(deps)
    # A cancellation is tied to no step: its event says the alert's step as it stands.
    cancel = replace(
        webhook, purpose="cancel", context={**webhook.context, "step": None, "repeat": None}
    )

    assert known_subject(cancel) is None
    assert decide_known([Settled(cancel, Skip("x"))], now=LATER) is None


async def test_delivered_records_of_two_notice_versions_are_not_one_change(
    deps: FakeDeps,
) -> None:
    _, (webhook, email) = await _opened(deps)
    later = replace(email, aggregate_version=2, delivery_id=uuid.uuid4())
    delivered = Delivered(attempts=1, delivered_at=NOW, destination_key="k")

    assert decide_known([Settled(webhook, delivered), Settled(later, delivered)], now=LATER) is None
    assert decide_known([Settled(webhook, delivered)], now=LATER) is not None
