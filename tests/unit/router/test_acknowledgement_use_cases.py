"""Acknowledgement use cases on in-memory fakes: acknowledge, links and their page."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import structlog

from services.router import acknowledgement, alerting
from services.router.domain import alert_id_for
from services.router.errors import (
    AlertClosed,
    AlertNotFound,
    LinkRejected,
    NotARecipient,
    StaleVersion,
    UnknownVersion,
)
from tests.unit.router.fakes import (
    SPOC,
    Clock,
    FakeDeps,
    FakeUnitOfWork,
    cancelled,
    make_deps,
    received,
    updated,
    with_directory,
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(tmp_path: Path, clock: Clock) -> FakeDeps:
    deps = make_deps(tmp_path, clock=clock)
    with_directory(deps.store)
    return deps


async def _open(deps: FakeDeps) -> uuid.UUID:
    notice = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=notice)
    return alert_id_for(notice.notice_id)


async def test_acknowledge_stops_escalation_and_twice_is_harmless(
    deps: FakeDeps, clock: Clock
) -> None:
    alert_id = await _open(deps)
    clock.advance(30)
    uow = FakeUnitOfWork(deps.store)
    with structlog.testing.capture_logs() as logs:
        result = await acknowledgement.acknowledge(
            uow,
            deps=deps,
            alert_id=alert_id,
            person_id=SPOC,
            notice_version=1,
            method="api",
            comment="Calling the field office.",
        )
        await uow.commit()
    assert result.already is False
    alert = deps.store.alerts[alert_id]
    assert (alert.state, alert.next_fire_at, alert.active_escalation_id) == (
        "acknowledged",
        None,
        None,
    )
    [event] = deps.store.events("alert.acknowledged")
    assert (event.acknowledged_by, event.method) == (SPOC, "api")
    [entry] = deps.store.entries(alert_id, "acknowledged")
    assert entry.detail == {"comment": "Calling the field office.", "previous_state": "triggered"}
    [line] = [e for e in logs if e["event"] == "alert.acknowledged"]
    assert line["seconds_to_ack"] == 30.0
    assert "Calling" not in str(line)  # free text stays out of logs

    again = await acknowledgement.acknowledge(
        FakeUnitOfWork(deps.store),
        deps=deps,
        alert_id=alert_id,
        person_id=SPOC,
        notice_version=1,
        method="link",
    )
    assert again.already is True
    assert len(deps.store.events("alert.acknowledged")) == 1


@pytest.mark.parametrize(
    ("person", "version", "refusal"),
    [(uuid.uuid4(), 1, NotARecipient), (SPOC, 3, UnknownVersion), (SPOC, 1, StaleVersion)],
)
async def test_acknowledge_refuses_strangers_and_wrong_versions(
    deps: FakeDeps, person: uuid.UUID, version: int, refusal: type[Exception]
) -> None:
    first = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=first)
    await alerting.reopen_alert(
        FakeUnitOfWork(deps.store), deps=deps, notice=updated(first, 2, summary="Changed")
    )
    with pytest.raises(refusal):
        await acknowledgement.acknowledge(
            FakeUnitOfWork(deps.store),
            deps=deps,
            alert_id=alert_id_for(first.notice_id),
            person_id=person,
            notice_version=version,
            method="api",
        )
    assert deps.store.events("alert.acknowledged") == []


async def test_a_resolved_alert_cannot_be_acknowledged(deps: FakeDeps) -> None:
    first = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=first)
    await alerting.cancel_alert(FakeUnitOfWork(deps.store), deps=deps, notice=cancelled(first, 2))
    with pytest.raises(AlertClosed):
        await acknowledgement.acknowledge(
            FakeUnitOfWork(deps.store),
            deps=deps,
            alert_id=alert_id_for(first.notice_id),
            person_id=SPOC,
            notice_version=2,
            method="api",
        )
    with pytest.raises(AlertNotFound):
        await acknowledgement.acknowledge(
            FakeUnitOfWork(deps.store),
            deps=deps,
            alert_id=first.notice_id,
            person_id=SPOC,
            notice_version=1,
            method="api",
        )


async def test_a_link_names_alert_version_and_person_until_it_expires(
    deps: FakeDeps, clock: Clock
) -> None:
    alert_id = await _open(deps)
    url, expires_at = acknowledgement.ack_link(
        deps, alert_id=alert_id, version=1, person_id=SPOC, now=clock()
    )
    token = url.split("token=")[1]
    claims = acknowledgement.read_link(deps, token)
    assert (claims.alert_id, claims.notice_version, claims.person_id) == (alert_id, 1, SPOC)
    page = await acknowledgement.link_page(FakeUnitOfWork(deps.store), deps=deps, token=token)
    assert (page.refusal, page.already) == (None, False)
    assert deps.store.alerts[alert_id].state == "triggered", "reading a link never acknowledges"

    with pytest.raises(LinkRejected) as tampered:
        acknowledgement.read_link(deps, token[:-2] + "xx")
    assert tampered.value.reason != "expired"
    clock.now = expires_at
    with pytest.raises(LinkRejected) as expired:
        acknowledgement.read_link(deps, token)
    assert expired.value.reason == "expired"


async def test_the_link_page_of_a_superseded_version_says_it_is_stale(
    deps: FakeDeps, clock: Clock
) -> None:
    first = received()
    await alerting.open_alert(FakeUnitOfWork(deps.store), deps=deps, notice=first)
    alert_id = alert_id_for(first.notice_id)
    url, _ = acknowledgement.ack_link(
        deps, alert_id=alert_id, version=1, person_id=SPOC, now=clock()
    )
    await alerting.reopen_alert(
        FakeUnitOfWork(deps.store), deps=deps, notice=updated(first, 2, summary="Changed")
    )
    page = await acknowledgement.link_page(
        FakeUnitOfWork(deps.store), deps=deps, token=url.split("token=")[1]
    )
    assert isinstance(page.refusal, StaleVersion)
    assert page.refusal.current_version == 2
