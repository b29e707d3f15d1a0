"""Notice projection and standby drafts, with in-memory fakes (no Kafka, no database)."""

from __future__ import annotations

from datetime import timedelta

from schemas.bulletins import BulletinDrafted
from schemas.notices import NoticeCancelled, NoticeUpdated
from schemas.topics import NOTICES
from services.common.inbox import Claim
from services.rumor_control import notices, vetting
from services.rumor_control.deps import RumorControlDeps
from tests.unit.rumor_control.conftest import AUTHOR, acknowledgement, standby_draft
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store, notice


async def test_an_acknowledged_notice_gets_a_standby_draft_in_both_languages(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock, area_code="riverside")

    view = await vetting.get_bulletin(FakeUnitOfWork(store), bulletin_id=bulletin_id)
    assert view.bulletin.state == "drafted"
    assert view.latest.blocked_reasons == ()
    assert "Riverside" in view.latest.texts["en"]["headline"]
    assert "La Ribera" in view.latest.texts["es"]["headline"]
    (drafted,) = store.events(BulletinDrafted)
    assert drafted.bulletin_id == bulletin_id
    assert drafted.kind == "standby"
    assert store.actions(bulletin_id) == ["drafted"]


async def test_an_acknowledgement_before_its_notice_waits_for_it(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    received = notice(deps, area_code="lakeview")
    ack = acknowledgement(received.notice_id, at=clock)

    await notices.acknowledge_alert(FakeUnitOfWork(store), deps=deps, acknowledged=ack)
    assert store.bulletins == {}
    assert received.notice_id in store.standby_requests

    await notices.apply_notice(FakeUnitOfWork(store), deps=deps, notice=received)
    (standby,) = store.bulletins.values()
    assert standby.standby_for_notice == received.notice_id
    assert store.standby_requests == set()


async def test_a_second_acknowledgement_drafts_no_second_standby(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    notice_id = store.bulletins[bulletin_id].standby_for_notice
    assert notice_id is not None

    ack = acknowledgement(notice_id, at=clock)
    await notices.acknowledge_alert(FakeUnitOfWork(store), deps=deps, acknowledged=ack)

    assert list(store.bulletins) == [bulletin_id]


async def test_an_operation_long_over_gets_no_standby(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    received = notice(deps, start=clock() - timedelta(days=2))
    await notices.apply_notice(FakeUnitOfWork(store), deps=deps, notice=received)
    ack = acknowledgement(received.notice_id, at=clock)

    await notices.acknowledge_alert(FakeUnitOfWork(store), deps=deps, acknowledged=ack)

    assert store.bulletins == {}


async def test_a_notice_update_redrafts_its_untouched_standby(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock, area_code="northgate")
    original = store.bulletins[bulletin_id]
    notice_id = original.standby_for_notice
    assert notice_id is not None
    received = store.notices[notice_id]
    clock.advance(minutes=5)
    moved = NoticeUpdated(
        **{
            **notice(deps).model_dump(exclude={"msg_type", "version", "references", "notice_id"}),
            "notice_id": notice_id,
            "area_code": "los-alamos",
            "area": "Los Alamos",
            "window_start": received.window_start,
            "window_end": received.window_end,
        },
        msg_type="Update",
        version=2,
        references=(f"{notice_id}:1",),
    )

    await notices.apply_notice(FakeUnitOfWork(store), deps=deps, notice=moved)

    view = await vetting.get_bulletin(FakeUnitOfWork(store), bulletin_id=bulletin_id)
    assert "Los Álamos" in view.latest.texts["en"]["body"]
    assert view.latest.revision == 2
    assert view.bulletin.area_code == "los-alamos"
    assert view.bulletin.updated_at == clock()
    assert store.actions(bulletin_id) == ["drafted", "redrafted"]
    assert len(store.events(BulletinDrafted)) == 2


async def test_an_edited_standby_is_not_redrafted(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock, area_code="northgate")
    notice_id = store.bulletins[bulletin_id].standby_for_notice
    assert notice_id is not None
    await vetting.edit_bulletin(
        FakeUnitOfWork(store), deps=deps, actor=AUTHOR, bulletin_id=bulletin_id,
        language="en", changes={"headline": "Riverton Police: standby notice"},
    )  # fmt: skip
    moved = NoticeUpdated(
        **{
            **notice(deps).model_dump(exclude={"msg_type", "version", "references", "notice_id"}),
            "notice_id": notice_id,
            "area_code": "los-alamos",
        },
        msg_type="Update",
        version=2,
        references=(f"{notice_id}:1",),
    )

    await notices.apply_notice(FakeUnitOfWork(store), deps=deps, notice=moved)

    assert "redrafted" not in store.actions(bulletin_id)


async def test_a_new_restricted_term_blocks_a_draft_that_prints_it(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock, area_code="riverside")
    notice_id = store.bulletins[bulletin_id].standby_for_notice
    assert notice_id is not None
    # A vetter wrote a word into the draft that a later notice version marks as restricted.
    await vetting.edit_bulletin(
        FakeUnitOfWork(store), deps=deps, actor=AUTHOR, bulletin_id=bulletin_id,
        language="en", changes={"headline": "Riverton Police: Quintero Bakery standby"},
    )  # fmt: skip
    updated = notice(deps, restricted_terms=("Quintero Bakery",))
    with_term = NoticeUpdated(
        **{
            **updated.model_dump(exclude={"msg_type", "version", "references", "notice_id"}),
            "notice_id": notice_id,
        },
        msg_type="Update",
        version=2,
        references=(f"{notice_id}:1",),
    )

    await notices.apply_notice(FakeUnitOfWork(store), deps=deps, notice=with_term)

    view = await vetting.get_bulletin(FakeUnitOfWork(store), bulletin_id=bulletin_id)
    assert "leak.restricted_term" in view.latest.blocked_reasons
    assert store.actions(bulletin_id)[-1] == "guardrails_rechecked"


async def test_a_cancelled_notice_is_marked_cancelled(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    received = notice(deps)
    await notices.apply_notice(FakeUnitOfWork(store), deps=deps, notice=received)
    clock.advance(minutes=10)
    cancelled = NoticeCancelled(
        notice_id=received.notice_id,
        version=2,
        references=(f"{received.notice_id}:1",),
        status="Actual",
        sent_at=clock(),
        received_at=clock(),
        reason="operation_cancelled",
    )

    await notices.apply_notice_cancelled(FakeUnitOfWork(store), deps=deps, cancelled=cancelled)

    assert store.notices[received.notice_id].cancelled_at == cancelled.received_at
    assert store.notices[received.notice_id].version == 2


async def test_the_projection_is_logged_only_after_commit(
    deps: RumorControlDeps, store: Store
) -> None:
    uow = FakeUnitOfWork(store)
    await notices.apply_notice(uow, deps=deps, notice=notice(deps))
    assert len(uow.effects) == 1  # held back until the consumer commits
    await uow.commit()
    assert uow.effects == []


CLAIM = Claim("rumor_control.notices", "message-1", NOTICES)


async def test_a_new_notice_is_projected_with_its_claim(
    deps: RumorControlDeps, store: Store
) -> None:
    received = notice(deps, area_code="lakeview", restricted_terms=("Elm Street",))
    uow = FakeUnitOfWork(store)

    assert await notices.project_notice_claiming(uow, deps=deps, notice=received, claim=CLAIM)

    projected = store.notices[received.notice_id]
    assert (projected.version, projected.area_code) == (1, "lakeview")
    assert projected.fingerprints == frozenset(received.restricted_fingerprints)
    assert store.claims == {("rumor_control.notices", "message-1")}
    assert len(uow.effects) == 1  # its log line, after the commit


async def test_a_claimed_message_a_known_notice_or_a_waiting_request_is_not_carried(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    received = notice(deps)
    assert await notices.project_notice_claiming(
        FakeUnitOfWork(store), deps=deps, notice=received, claim=CLAIM
    )
    other = Claim(CLAIM.consumer, "message-2", NOTICES)
    awaited = notice(deps)
    ack = acknowledgement(awaited.notice_id, at=clock)
    await notices.acknowledge_alert(FakeUnitOfWork(store), deps=deps, acknowledged=ack)
    before = dict(store.notices)

    for version, claim in ((received, CLAIM), (received, other), (awaited, other)):
        uow = FakeUnitOfWork(store)
        assert not await notices.project_notice_claiming(
            uow, deps=deps, notice=version, claim=claim
        )
        assert uow.effects == []

    # Nothing written: the usual path (apply_notice) decides each of them.
    assert store.notices == before
    assert store.claims == {("rumor_control.notices", "message-1")}
    assert store.standby_requests == {awaited.notice_id}
