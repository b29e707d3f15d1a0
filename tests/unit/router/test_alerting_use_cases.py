"""Alerting use cases on in-memory fakes: open, re-open, cancel, notify, read."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import structlog

from services.common.inbox import Claim
from services.router import alerting
from services.router.domain import alert_id_for
from services.router.errors import AlertNotFound, NoDirectory
from tests.unit.router.fakes import (
    BACKUP,
    NOW,
    SPOC,
    FakeDeps,
    FakeUnitOfWork,
    cancelled,
    directory_document,
    make_deps,
    received,
    updated,
    with_directory,
)


@pytest.fixture
def deps(tmp_path: Path) -> FakeDeps:
    deps = make_deps(tmp_path)
    with_directory(deps.store)
    return deps


async def test_open_alert_freezes_the_directory_and_notifies_the_spoc_on_each_channel(
    deps: FakeDeps,
) -> None:
    notice = received(status="Exercise")
    uow = FakeUnitOfWork(deps.store)
    with structlog.testing.capture_logs() as logs:
        await alerting.open_alert(uow, deps=deps, notice=notice)
        assert not [e for e in logs if e["event"] == "alert.triggered"], "not before commit"
        await uow.commit()

    alert = deps.store.alerts[alert_id_for(notice.notice_id)]
    assert alert.state == "triggered"
    assert alert.urgency == "high"  # starts within the 2 h horizon
    assert alert.snapshot.directory_version == 1
    assert alert.next_fire_at == NOW + timedelta(seconds=60)
    assert [e.kind for e in deps.store.entries(alert.id)] == ["triggered", "notified", "notified"]
    requests = deps.store.orders
    assert [(r.recipient_id, r.channel) for r in requests] == [(SPOC, "webhook"), (SPOC, "email")]
    assert all(r.context["headline"].startswith("DRILL ") for r in requests)
    assert [t.recipient_id for t in deps.store.events("alert.triggered")] == [SPOC]
    assert [e["event"] for e in logs] == ["alert.triggered"]


async def test_the_new_alerts_line_and_deadline_come_after_the_webhooks_write(
    deps: FakeDeps,
) -> None:
    # At commit the engine's hand-off spawns the notice's sends (registered first, inside
    # the opening). The webhook's first step spawns the task that writes its request, as
    # aiohttp does on Python 3.11; the new alert's line, counter and deadline wait behind
    # that write, not only behind the first step.
    order: list[str] = []
    writers: list[asyncio.Task[None]] = []

    async def write() -> None:
        order.append("written")

    async def send() -> None:
        order.append("send")
        writers.append(asyncio.create_task(write()))

    sends: list[asyncio.Task[None]] = []
    deps = replace(deps, timer_set=lambda _at: order.append("triggered"))
    uow = FakeUnitOfWork(deps.store)
    uow.after_commit(lambda: sends.append(asyncio.create_task(send())))
    await alerting.open_alert(uow, deps=deps, notice=received())
    await uow.commit()
    await asyncio.gather(*sends, *writers)
    assert order == ["send", "written", "triggered"]


async def test_the_new_alerts_deadline_reaches_the_escalation_worker_after_commit(
    deps: FakeDeps,
) -> None:
    heard: list[datetime] = []
    deps = replace(deps, timer_set=heard.append)
    notice = received()
    uow = FakeUnitOfWork(deps.store)
    await alerting.open_alert(uow, deps=deps, notice=notice)
    assert heard == [], "not before commit"
    await uow.commit()
    assert heard == [NOW + timedelta(seconds=60)]  # step 0's wait, before the window ends

    first = deps.store.alerts[alert_id_for(notice.notice_id)]
    uow = FakeUnitOfWork(deps.store)
    await alerting.reopen_alert(uow, deps=deps, notice=updated(notice, 2, summary="moved"))
    await uow.commit()
    assert heard[1:] == [NOW + timedelta(seconds=60)], "a re-opened alert's timer too"
    assert first.expires_at > heard[1]


async def test_a_notice_without_a_directory_is_refused_so_it_is_retried(tmp_path: Path) -> None:
    deps = make_deps(tmp_path)
    with pytest.raises(NoDirectory):
        await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=received())
    assert deps.store.alerts == {}


async def test_the_same_notice_twice_opens_one_alert(deps: FakeDeps) -> None:
    notice = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=notice)
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=notice)
    assert len(deps.store.alerts) == 1
    assert len(deps.store.events("alert.triggered")) == 1


async def test_later_alerts_open_without_reading_the_directory_again(deps: FakeDeps) -> None:
    first, second = received(), received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=first)
    assert deps.store.opened_without_reads == 0, "the first alert reads the directory"
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=second)

    assert deps.store.opened_without_reads == 1
    alert = deps.store.alerts[alert_id_for(second.notice_id)]
    assert alert.snapshot.directory_version == 1
    assert [e.kind for e in deps.store.entries(alert.id)] == ["triggered", "notified", "notified"]
    assert len(deps.store.events("alert.triggered")) == 2


async def test_a_known_directory_opens_an_alert_carrying_the_inbox_claim(deps: FakeDeps) -> None:
    heard: list[datetime] = []
    deps = replace(deps, timer_set=heard.append)
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=received())
    notice = received()
    claim = Claim("router.notices", "message-1", "aviso.notices.v1")
    uow = FakeUnitOfWork(deps.store)

    assert await alerting.open_alert_claiming(uow, deps=deps, notice=notice, claim=claim)
    await uow.commit()

    assert deps.store.claims == {("router.notices", "message-1")}
    alert = deps.store.alerts[alert_id_for(notice.notice_id)]
    assert [e.kind for e in deps.store.entries(alert.id)] == ["triggered", "notified", "notified"]
    assert heard == [alert.next_fire_at], "its deadline after the commit, as ever"


async def test_a_claimed_message_or_an_unknown_directory_is_not_carried(
    deps: FakeDeps,
) -> None:
    notice = received()
    claim = Claim("router.notices", "message-1", "aviso.notices.v1")
    # No directory known yet: nothing written, the consumer's usual path decides.
    assert not await alerting.open_alert_claiming(
        FakeUnitOfWork(deps.store), deps=deps, notice=notice, claim=claim
    )
    assert deps.store.alerts == {}
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=received())
    deps.store.claims.add(("router.notices", "message-1"))  # recorded already
    assert not await alerting.open_alert_claiming(
        FakeUnitOfWork(deps.store), deps=deps, notice=notice, claim=claim
    )
    assert alert_id_for(notice.notice_id) not in deps.store.alerts


async def test_a_run_opens_together_and_one_with_an_alert_takes_the_slow_path(
    deps: FakeDeps,
) -> None:
    known = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=known)
    first, last = received(), received()
    uow = FakeUnitOfWork(deps.store)
    run = [(first, "c-1"), (known, "c-2"), (last, "c-3")]

    finishers = await alerting.open_alerts(uow, deps=deps, notices=run)

    assert deps.store.opened_together == 1, "the run's usual openings written at once"
    assert deps.store.opened_without_reads == 2, "the notice with an alert wrote nothing"
    assert len(finishers) == 3
    for finish in finishers:
        await finish(uow)
    await uow.commit()
    assert len(deps.store.alerts) == 3
    assert len(deps.store.events("alert.triggered")) == 3, "one alert per notice"
    assert deps.store.alerts[alert_id_for(first.notice_id)].correlation_id == "c-1"
    assert deps.store.alerts[alert_id_for(last.notice_id)].correlation_id == "c-3"


async def test_a_run_with_no_known_directory_takes_the_slow_path(deps: FakeDeps) -> None:
    notices = [received(), received()]
    uow = FakeUnitOfWork(deps.store)

    finishers = await alerting.open_alerts(uow, deps=deps, notices=[(n, None) for n in notices])
    for finish in finishers:
        await finish(uow)
    await uow.commit()

    assert deps.store.opened_together == 0, "nothing to write without a directory known"
    assert {alert_id_for(n.notice_id) for n in notices} <= set(deps.store.alerts)


async def test_an_alert_after_a_directory_change_freezes_the_new_directory(
    deps: FakeDeps,
) -> None:
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=received())
    deps.store.directories.append(
        replace(deps.store.directories[-1], version=2, document=directory_document(spoc_wait_s=5))
    )
    notice = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=notice)

    assert deps.store.opened_without_reads == 0, "the remembered directory is no longer in force"
    alert = deps.store.alerts[alert_id_for(notice.notice_id)]
    assert alert.snapshot.directory_version == 2
    assert alert.next_fire_at == NOW + timedelta(seconds=5)


async def test_an_update_of_an_alerted_notice_through_open_reopens_it(deps: FakeDeps) -> None:
    first = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=first)
    await alerting.open_alert(
        FakeUnitOfWork(deps.store), deps=deps, notice=updated(first, 2, summary="moved")
    )

    alert = deps.store.alerts[alert_id_for(first.notice_id)]
    assert alert.notice_version == 2
    assert len(deps.store.events("alert.triggered")) == 2


async def test_a_notice_whose_window_is_over_opens_nothing(deps: FakeDeps) -> None:
    old = received(now=NOW - timedelta(days=1))
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=old)
    assert deps.store.alerts == {}


async def test_reopen_requires_a_fresh_ack_and_tells_whoever_acknowledged(deps: FakeDeps) -> None:
    first = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=first)
    alert_id = alert_id_for(first.notice_id)
    acked = replace(deps.store.alerts[alert_id], state="acknowledged", acknowledged_by=BACKUP)
    deps.store.alerts[alert_id] = acked
    await alerting.reopen_alert(
        FakeUnitOfWork(deps.store), deps=deps, notice=updated(first, 2, summary="Moved to Monday.")
    )

    alert = deps.store.alerts[alert_id]
    assert (alert.state, alert.notice_version, alert.content.summary) == (
        "triggered",
        2,
        "Moved to Monday.",
    )
    assert alert.active_escalation_id != acked.active_escalation_id
    reopened = deps.store.entries(alert_id, "reopened")
    assert reopened[0].detail["previous_state"] == "acknowledged"
    updates = [r for r in deps.store.orders if r.purpose == "update"]
    assert {r.recipient_id for r in updates} == {SPOC, BACKUP}
    assert deps.store.events("alert.triggered")[-1].cause == "notice.updated"


async def test_a_stale_update_changes_nothing(deps: FakeDeps) -> None:
    first = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=first)
    second = updated(first, 2, summary="Second")
    await alerting.reopen_alert(FakeUnitOfWork(deps.store), deps=deps, notice=second)
    before, events = dict(deps.store.alerts), len(deps.store.outbox)
    await alerting.reopen_alert(FakeUnitOfWork(deps.store), deps=deps, notice=second)
    assert deps.store.alerts == before
    assert len(deps.store.outbox) == events


async def test_an_update_of_an_unknown_notice_opens_its_alert(deps: FakeDeps) -> None:
    first = received()
    await alerting.reopen_alert(
        FakeUnitOfWork(deps.store), deps=deps, notice=updated(first, 2, summary="Later")
    )
    assert deps.store.alerts[alert_id_for(first.notice_id)].notice_version == 2


async def test_cancel_resolves_and_tells_everyone_who_was_notified(deps: FakeDeps) -> None:
    first = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=first)
    await alerting.cancel_alert(FakeUnitOfWork(deps.store), deps=deps, notice=cancelled(first, 2))

    alert = deps.store.alerts[alert_id_for(first.notice_id)]
    assert (alert.state, alert.resolution, alert.next_fire_at) == (
        "resolved",
        "notice_cancelled",
        None,
    )
    resolved = deps.store.events("alert.resolved")
    assert [(r.reason, r.acknowledged) for r in resolved] == [("notice_cancelled", False)]
    cancels = [r for r in deps.store.orders if r.purpose == "cancel"]
    assert [(r.recipient_id, r.channel) for r in cancels] == [(SPOC, "webhook"), (SPOC, "email")]
    # A second cancellation (redelivered) is stale: nothing more.
    await alerting.cancel_alert(FakeUnitOfWork(deps.store), deps=deps, notice=cancelled(first, 2))
    assert len(deps.store.events("alert.resolved")) == 1


async def test_queries_read_alerts_and_timelines(deps: FakeDeps) -> None:
    notice = received()
    uow = FakeUnitOfWork(deps.store)
    await alerting.open_alert(uow, deps=deps, notice=notice)
    alert_id = alert_id_for(notice.notice_id)

    assert (await alerting.get_alert(uow, alert_id=alert_id)).id == alert_id
    assert [a.id for a in await alerting.list_alerts(uow, states=[], limit=5, offset=0)] == [
        alert_id
    ]
    assert await alerting.list_alerts(uow, states=["resolved"], limit=5, offset=0) == []
    alert, entries = await alerting.alert_timeline(uow, alert_id=alert_id)
    assert alert.id == alert_id
    assert entries[0].kind == "triggered"
    with pytest.raises(AlertNotFound):
        await alerting.get_alert(uow, alert_id=notice.notice_id)
