"""Vetting use cases with in-memory fakes: edit, sign off, approve (publish), reject, read."""

from __future__ import annotations

import uuid

import pytest

from schemas.bulletins import BulletinApproved, BulletinDrafted, BulletinPublished, BulletinRejected
from services.rumor_control import vetting
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import NotFound, VettingError
from tests.unit.rumor_control.conftest import APPROVER, AUTHOR, standby_draft
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store


async def _signed_and_approved(
    deps: RumorControlDeps, store: Store, bulletin_id: uuid.UUID
) -> None:
    await vetting.approve(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        sign_off_languages=["en", "es"],
    )  # fmt: skip


async def test_an_edit_of_a_draft_is_a_new_revision_by_its_editor(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    await vetting.sign_off(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id, languages=["es"]
    )

    view = await vetting.edit_bulletin(
        FakeUnitOfWork(store), deps=deps, actor=AUTHOR, bulletin_id=bulletin_id, language="en",
        changes={"headline": "Riverton Police: what we know"},
    )  # fmt: skip

    latest = view.latest
    assert (latest.version, latest.revision, latest.author_id) == (1, 2, AUTHOR.id)
    assert latest.texts["en"]["headline"] == "Riverton Police: what we know"
    assert latest.signoffs == {}  # sign-offs start over
    assert store.events(BulletinDrafted)[-1].author_id == AUTHOR.id
    assert store.actions(bulletin_id) == ["drafted", "signed_off", "edited"]


async def test_an_edit_that_prints_a_phone_number_is_blocked(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    view = await vetting.edit_bulletin(
        FakeUnitOfWork(store), deps=deps, actor=AUTHOR, bulletin_id=bulletin_id, language="en",
        changes={"sms": "Call Maria at (505) 555-9999"},
    )  # fmt: skip
    assert "pii.phone_number" in view.latest.blocked_reasons
    with pytest.raises(VettingError) as refused:
        await vetting.sign_off(
            FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
            languages=["en"],
        )  # fmt: skip
    assert refused.value.code == "vetting.blocked"


async def test_the_author_cannot_sign_off_or_approve(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    await vetting.edit_bulletin(
        FakeUnitOfWork(store), deps=deps, actor=AUTHOR, bulletin_id=bulletin_id, language="es",
        changes={"headline": "Policía de Riverton: lo que sabemos"},
    )  # fmt: skip
    with pytest.raises(VettingError) as sign:
        await vetting.sign_off(
            FakeUnitOfWork(store), deps=deps, actor=AUTHOR, bulletin_id=bulletin_id,
            languages=["en"],
        )  # fmt: skip
    assert sign.value.code == "vetting.author_cannot_sign_off"
    assert sign.value.forbidden
    with pytest.raises(VettingError) as approve:
        await vetting.approve(
            FakeUnitOfWork(store), deps=deps, actor=AUTHOR, bulletin_id=bulletin_id
        )
    assert approve.value.code == "vetting.author_cannot_approve"


async def test_approval_needs_every_language_signed_off(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    with pytest.raises(VettingError) as refused:
        await vetting.approve(
            FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
            sign_off_languages=["en"],
        )  # fmt: skip
    assert refused.value.code == "vetting.signoff_missing"
    assert store.bulletins[bulletin_id].state == "drafted"


async def test_approval_publishes_with_both_events_and_the_deliveries(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    clock.advance(minutes=3)
    uow = FakeUnitOfWork(store)

    view = await vetting.approve(
        uow, deps=deps, actor=APPROVER, bulletin_id=bulletin_id, sign_off_languages=["en", "es"]
    )

    assert view.bulletin.state == "published"
    assert view.latest.state == "published"
    assert view.latest.published_at == clock()
    assert view.latest.approved_by == APPROVER.id
    (approved,) = store.events(BulletinApproved)
    assert [s.language for s in approved.signoffs] == ["en", "es"]
    (published,) = store.events(BulletinPublished)
    assert published.channels == ("liaison", "public_feed", "radio")
    assert {t.language for t in published.texts} == {"en", "es"}
    # Deliveries are accepted by the engine in the approval's transaction, not on Kafka:
    # one per recipient and configured channel, each with its own stable id.
    orders = list(store.orders.values())
    expected = {(r.id, c) for r in deps.department.community() for c in r.channels()}
    assert {(o.recipient_id, o.channel) for o in orders} == expected
    assert len(orders) == len(expected)
    assert {o.purpose for o in orders} == {"bulletin"}
    assert {(o.aggregate_id, o.aggregate_version) for o in orders} == {(bulletin_id, 1)}
    assert {o.context["status"] for o in orders} == {"Actual"}
    desk = deps.department.radio_desk
    assert desk is not None
    assert {o.language for o in orders if o.recipient_id == desk.id} == {"es"}
    assert store.actions(bulletin_id)[-4:] == ["signed_off", "signed_off", "approved", "published"]
    assert store.timeline[-1].detail["deliveries_requested"] == len(orders)
    kinds = [type(e).__name__ for e in store.outbox[-2:]]
    assert kinds == ["BulletinApproved", "BulletinPublished"]


async def test_an_edit_of_a_published_bulletin_drafts_a_cap_update(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    await _signed_and_approved(deps, store, bulletin_id)

    view = await vetting.edit_bulletin(
        FakeUnitOfWork(store), deps=deps, actor=AUTHOR, bulletin_id=bulletin_id, language="en",
        changes={"headline": "Riverton Police: an update"},
    )  # fmt: skip

    assert [v.state for v in view.versions] == ["published", "drafted"]
    update = view.latest
    assert update.msg_type == "Update"
    assert update.references == (f"{bulletin_id}:1",)
    assert view.bulletin.state == "published"
    assert view.bulletin.current_version == 2
    assert store.events(BulletinDrafted)[-1].msg_type == "Update"


async def test_a_rejected_draft_is_final_and_reasons_are_sorted_codes(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)

    view = await vetting.reject(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        reason_codes=["vetter.tone", "vetter.accuracy", "vetter.tone"], comment="Too alarming",
    )  # fmt: skip

    assert view.bulletin.state == "rejected"
    assert view.latest.reason_codes == ("vetter.accuracy", "vetter.tone")
    assert view.latest.vetter_comment == "Too alarming"
    (rejected,) = store.events(BulletinRejected)
    assert rejected.reason_codes == ("vetter.accuracy", "vetter.tone")
    with pytest.raises(VettingError) as again:
        await vetting.reject(
            FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
            reason_codes=["vetter.tone"], comment=None,
        )  # fmt: skip
    assert again.value.code == "vetting.not_a_draft"


async def test_a_rejected_update_leaves_the_published_version_in_force(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    await _signed_and_approved(deps, store, bulletin_id)
    await vetting.edit_bulletin(
        FakeUnitOfWork(store), deps=deps, actor=AUTHOR, bulletin_id=bulletin_id, language="en",
        changes={"headline": "Riverton Police: an update"},
    )  # fmt: skip

    view = await vetting.reject(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        reason_codes=["vetter.accuracy"], comment=None,
    )  # fmt: skip

    assert view.bulletin.state == "published"
    assert view.last_published is not None
    assert view.last_published.version == 1


async def test_bulletins_are_listed_by_state_and_unknown_ones_are_not_found(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    drafted = await standby_draft(deps, store, clock)
    uow = FakeUnitOfWork(store)
    assert [b.bulletin_id for b, _ in await vetting.list_bulletins(uow)] == [drafted]
    assert await vetting.list_bulletins(uow, states=("published", "retracted")) == []
    with pytest.raises(NotFound):
        await vetting.get_bulletin(uow, bulletin_id=uuid.uuid4())
