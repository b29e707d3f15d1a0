"""The rumor ledger's use cases with in-memory fakes: report, list, get, assess, timeline."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from schemas.bulletins import BulletinDrafted
from schemas.rumors import RumorAssessed, RumorReported
from services.rumor_control import notices, rumors
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import Actor, InvalidInput, NotFound
from services.rumor_control.rumors import NewReport
from tests.unit.rumor_control.conftest import AUTHOR
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store, notice

LIAISON = Actor(uuid.uuid4(), "Casa Hispana", "liaison")


def _report(place: str = "Riverside Park", **fields: object) -> NewReport:
    return NewReport(claim="ICE vans near the park", place=place, channel="phone_line", **fields)  # type: ignore[arg-type]


async def test_a_report_opens_a_rumor_and_a_nearby_one_joins_it(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    uow = FakeUnitOfWork(store)
    first = await rumors.report_rumor(uow, deps=deps, actor=LIAISON, report=_report())
    await uow.commit()
    clock.advance(minutes=20)
    second = await rumors.report_rumor(
        FakeUnitOfWork(store), deps=deps, actor=LIAISON, report=_report()
    )

    assert first.new_rumor
    assert not second.new_rumor
    assert second.rumor_id == first.rumor_id
    assert second.report_count == 2
    assert first.area_code == "riverside"
    assert first.status == "Actual"
    reported = store.events(RumorReported)
    assert [event.report_count for event in reported] == [1, 2]
    assert store.actions(first.rumor_id) == ["reported", "reported"]
    assert [r.reporter_id for r in store.reports] == [LIAISON.id, LIAISON.id]


async def test_reports_far_apart_in_time_open_separate_rumors(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    first = await rumors.report_rumor(
        FakeUnitOfWork(store), deps=deps, actor=LIAISON, report=_report()
    )
    clock.advance(hours=12)
    later = await rumors.report_rumor(
        FakeUnitOfWork(store), deps=deps, actor=LIAISON, report=_report()
    )
    assert later.new_rumor
    assert later.rumor_id != first.rumor_id


async def test_a_drill_report_makes_a_drill_rumor(deps: RumorControlDeps, store: Store) -> None:
    outcome = await rumors.report_rumor(
        FakeUnitOfWork(store), deps=deps, actor=LIAISON, report=_report(drill=True)
    )
    assert outcome.status == "Exercise"


async def test_the_ledger_suggests_confirmed_for_a_rumor_near_a_notice(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    received = notice(deps, area_code="riverside", start=clock())
    await notices.apply_notice(FakeUnitOfWork(store), deps=deps, notice=received)
    outcome = await rumors.report_rumor(
        FakeUnitOfWork(store), deps=deps, actor=LIAISON, report=_report()
    )

    (view,) = await rumors.list_rumors(FakeUnitOfWork(store), deps=deps)

    assert view.rumor.rumor_id == outcome.rumor_id
    assert view.suggestion.assessment == "Confirmed"
    assert view.suggestion.notice_ids == (received.notice_id,)
    assert not view.expired


async def test_get_rumor_has_its_reports_and_unknown_ids_are_not_found(
    deps: RumorControlDeps, store: Store
) -> None:
    outcome = await rumors.report_rumor(
        FakeUnitOfWork(store), deps=deps, actor=LIAISON, report=_report()
    )
    view = await rumors.get_rumor(FakeUnitOfWork(store), deps=deps, rumor_id=outcome.rumor_id)
    assert [r.claim for r in view.reports] == ["ICE vans near the park"]
    with pytest.raises(NotFound):
        await rumors.get_rumor(FakeUnitOfWork(store), deps=deps, rumor_id=uuid.uuid4())


async def test_an_assessment_drafts_a_rumor_fact_authored_by_the_vetter(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    received = notice(deps, area_code="riverside", start=clock())
    await notices.apply_notice(FakeUnitOfWork(store), deps=deps, notice=received)
    outcome = await rumors.report_rumor(
        FakeUnitOfWork(store), deps=deps, actor=LIAISON, report=_report()
    )

    uow = FakeUnitOfWork(store)
    rumor, bulletin_id = await rumors.assess_rumor(
        uow, deps=deps, actor=AUTHOR, rumor_id=outcome.rumor_id, assessment="Confirmed",
        as_of=None, expires_at=None, linked_notice_ids=[received.notice_id],
    )  # fmt: skip

    assert rumor.assessment == "Confirmed"
    assert rumor.assessment_revision == 1
    assert rumor.expires_at == clock() + timedelta(minutes=240)
    assert rumor.linked_notice_ids == (received.notice_id,)
    (assessed,) = store.events(RumorAssessed)
    assert assessed.assessed_by == AUTHOR.id
    bulletin = store.bulletins[bulletin_id]
    assert bulletin.kind == "rumor_fact"
    assert bulletin.rumor_id == outcome.rumor_id
    assert store.versions[bulletin_id][1].author_id == AUTHOR.id
    assert [e.kind for e in store.events(BulletinDrafted)] == ["rumor_fact"]
    assert store.actions(outcome.rumor_id) == ["reported", "assessed"]
    assert len(uow.effects) == 3  # blocks counted, drafted and assessed logged after commit


async def test_an_assessment_refuses_unknown_notices_and_an_expiry_before_as_of(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    outcome = await rumors.report_rumor(
        FakeUnitOfWork(store), deps=deps, actor=LIAISON, report=_report()
    )
    with pytest.raises(InvalidInput) as unknown:
        await rumors.assess_rumor(
            FakeUnitOfWork(store), deps=deps, actor=AUTHOR, rumor_id=outcome.rumor_id,
            assessment="False", as_of=None, expires_at=None, linked_notice_ids=[uuid.uuid4()],
        )  # fmt: skip
    assert unknown.value.code == "assessment.unknown_notice"
    with pytest.raises(InvalidInput) as backwards:
        await rumors.assess_rumor(
            FakeUnitOfWork(store), deps=deps, actor=AUTHOR, rumor_id=outcome.rumor_id,
            assessment="False", as_of=clock(), expires_at=clock() - timedelta(minutes=1),
            linked_notice_ids=[],
        )  # fmt: skip
    assert backwards.value.code == "assessment.expiry_before_as_of"
    assert store.events(RumorAssessed) == []


async def test_an_assessment_expires_by_the_clock(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    outcome = await rumors.report_rumor(
        FakeUnitOfWork(store), deps=deps, actor=LIAISON, report=_report()
    )
    await rumors.assess_rumor(
        FakeUnitOfWork(store), deps=deps, actor=AUTHOR, rumor_id=outcome.rumor_id,
        assessment="Not confirmed", as_of=None, expires_at=clock() + timedelta(minutes=30),
        linked_notice_ids=[],
    )  # fmt: skip
    view = await rumors.get_rumor(FakeUnitOfWork(store), deps=deps, rumor_id=outcome.rumor_id)
    assert not view.expired
    clock.advance(minutes=31)
    view = await rumors.get_rumor(FakeUnitOfWork(store), deps=deps, rumor_id=outcome.rumor_id)
    assert view.expired


async def test_the_timeline_lists_a_rumors_steps_and_unknown_bulletins_are_not_found(
    deps: RumorControlDeps, store: Store
) -> None:
    outcome = await rumors.report_rumor(
        FakeUnitOfWork(store), deps=deps, actor=LIAISON, report=_report()
    )
    entries = await rumors.timeline(
        FakeUnitOfWork(store), aggregate="rumor", aggregate_id=outcome.rumor_id
    )
    assert [(e.action, e.actor_id) for e in entries] == [("reported", LIAISON.id)]
    with pytest.raises(NotFound):
        await rumors.timeline(
            FakeUnitOfWork(store), aggregate="bulletin", aggregate_id=uuid.uuid4()
        )
