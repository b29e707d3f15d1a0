"""Bulletins never contradict each other (issue 13), with in-memory fakes: one live bulletin
per rumor, withdrawn drafts, a cancelled notice's flags, drills kept inside, expiry."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from schemas.base import version_ref
from schemas.bulletins import BulletinPublished, BulletinRetracted
from schemas.notices import NoticeCancelled
from schemas.rumors import RumorAssessment
from services.rumor_control import feeds, notices, publishing, rumors, vetting
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import NoticeRow, VettingError
from services.rumor_control.rumors import NewReport
from tests.unit.rumor_control.conftest import APPROVER, AUTHOR, standby_draft
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store, notice


async def _rumor(deps: RumorControlDeps, drill: bool = False) -> uuid.UUID:
    report = NewReport(claim="ICE vans", place="Riverside Park", channel="phone_line", drill=drill)
    outcome = await rumors.report_rumor(FakeUnitOfWork(store_of(deps)), deps=deps, actor=AUTHOR,
                                        report=report)  # fmt: skip
    return outcome.rumor_id


def store_of(deps: RumorControlDeps) -> Store:
    uow = deps.unit_of_work()
    assert isinstance(uow, FakeUnitOfWork)
    return uow.store


async def _assess(
    deps: RumorControlDeps,
    rumor_id: uuid.UUID,
    assessment: RumorAssessment,
    linked: tuple[uuid.UUID, ...] = (),
) -> uuid.UUID:
    _rumor_row, bulletin_id = await rumors.assess_rumor(
        FakeUnitOfWork(store_of(deps)), deps=deps, actor=AUTHOR, rumor_id=rumor_id,
        assessment=assessment, as_of=None, expires_at=None, linked_notice_ids=linked,
    )  # fmt: skip
    return bulletin_id


async def _approve(deps: RumorControlDeps, bulletin_id: uuid.UUID) -> None:
    await vetting.approve(
        FakeUnitOfWork(store_of(deps)), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        sign_off_languages=["en", "es"],
    )  # fmt: skip


async def _projected(deps: RumorControlDeps, **fields: object) -> NoticeRow:
    received = notice(deps, **fields)  # type: ignore[arg-type]
    await notices.apply_notice(FakeUnitOfWork(store_of(deps)), deps=deps, notice=received)
    row = store_of(deps).notices[received.notice_id]
    return row


async def test_a_new_assessment_supersedes_the_live_bulletin_as_its_update(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    rumor_id = await _rumor(deps)
    first = await _assess(deps, rumor_id, "Unable to verify")
    await _approve(deps, first)
    clock.advance(minutes=30)
    op = await _projected(deps)
    second = await _assess(deps, rumor_id, "Confirmed", (op.notice_id,))
    drafted = store.versions[second][1]
    assert (drafted.msg_type, drafted.references) == ("Update", (version_ref(first, 1),))
    assert drafted.texts["en"]["headline"].startswith("Update: ")
    assert store.bulletins[first].state == "published"  # live until the update is approved

    await _approve(deps, second)

    assert store.bulletins[first].state == "superseded"
    assert store.bulletins[first].superseded_by == second
    published = store.events(BulletinPublished)[-1]
    assert (published.bulletin_id, published.msg_type) == (second, "Update")
    assert published.references == (version_ref(first, 1),)
    # Liaisons and the radio desk are told it is an update.
    purposes = {o.purpose for o in store.orders.values() if o.aggregate_id == second}
    assert purposes == {"update"}
    uow = FakeUnitOfWork(store)
    liaison_list = await vetting.list_bulletins(uow, states=("published",), drills=False)
    assert [b.bulletin_id for b, _ in liaison_list] == [second]
    heads = await feeds.public_entries(uow)
    assert [b.bulletin_id for b, _ in heads] == [second]
    assert "superseded" in store.actions(first)

    # A retraction keeps the chain: its Cancel references both earlier messages.
    await publishing.retract(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=second,
        reason_code="vetting.error",
    )  # fmt: skip
    retracted = store.events(BulletinRetracted)[-1]
    assert retracted.references == (version_ref(first, 1), version_ref(second, 1))


async def test_a_new_assessment_withdraws_the_pending_draft(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    rumor_id = await _rumor(deps)
    stale = await _assess(deps, rumor_id, "Unable to verify")
    fresh = await _assess(deps, rumor_id, "False")
    assert store.bulletins[stale].state == "withdrawn"
    assert store.versions[stale][1].state == "withdrawn"
    with pytest.raises(VettingError) as refused:
        await _approve(deps, stale)
    assert refused.value.code == "vetting.withdrawn"
    await _approve(deps, fresh)
    assert store.versions[fresh][1].msg_type == "Alert"  # nothing was live: a new chain


async def test_a_cancelled_notice_withdraws_its_standby_and_flags_what_cites_it(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    standby = await standby_draft(deps, store, clock)
    notice_id = store.bulletins[standby].notice_ids[0]
    rumor_id = await _rumor(deps)
    confirmed = await _assess(deps, rumor_id, "Confirmed", (notice_id,))
    await _approve(deps, confirmed)
    cancelled = NoticeCancelled(
        notice_id=notice_id, version=2, references=(version_ref(notice_id, 1),),
        status="Actual", sent_at=clock(), received_at=clock(), reason="operation_cancelled",
    )  # fmt: skip

    for _ in range(2):  # a redelivered event changes nothing more
        await notices.apply_notice_cancelled(FakeUnitOfWork(store), deps=deps, cancelled=cancelled)

    assert store.bulletins[standby].state == "withdrawn"
    with pytest.raises(VettingError):
        await _approve(deps, standby)
    flagged = store.bulletins[confirmed]
    assert flagged.flags == ("notice.cancelled",)
    assert flagged.state == "published"  # still live until a vetter decides
    suggested = store.versions[confirmed][2]
    assert (suggested.state, suggested.msg_type, suggested.author_id) == ("drafted", "Update", None)
    assert "called off" in suggested.texts["en"]["body"]
    assert suggested.blocked_reasons == ()
    assert len(store.versions[confirmed]) == 2
    await _approve(deps, confirmed)  # any vetter may approve the automatic suggestion
    assert store.bulletins[confirmed].flags == ()


async def test_drills_go_only_to_the_drill_audience(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    rumor_id = await _rumor(deps, drill=True)
    bulletin_id = await _assess(deps, rumor_id, "Not confirmed")
    await _approve(deps, bulletin_id)
    recipients = {o.recipient_id for o in store.orders.values()}
    assert recipients == {r.id for r in deps.department.drill_audience}
    assert recipients.isdisjoint(r.id for r in deps.department.community())
    assert store.events(BulletinPublished)[-1].channels == ("drill_audience",)
    uow = FakeUnitOfWork(store)
    assert await vetting.list_bulletins(uow, states=("published",), drills=False) == []
    assert await feeds.public_entries(uow) == []


async def test_a_confirmed_bulletin_lasts_until_the_window_it_announces_ends(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    # The assessment is valid 4 hours; the operation runs from +2 h to +5 h.
    op = await _projected(deps, start=clock() + timedelta(hours=2))
    rumor_id = await _rumor(deps)
    bulletin_id = await _assess(deps, rumor_id, "Confirmed", (op.notice_id,))
    await _approve(deps, bulletin_id)
    published = store.events(BulletinPublished)[-1]
    assert published.expires_at == op.window_end
    assert store.rumors[rumor_id].expires_at is not None
    assert store.rumors[rumor_id].expires_at < op.window_end  # type: ignore[operator]
