"""Publishing use cases with in-memory fakes: retraction (CAP Cancel) and delivery orders."""

from __future__ import annotations

import pytest

from schemas.bulletins import BulletinRetracted
from services.rumor_control import publishing, vetting
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import VettingError
from tests.unit.rumor_control.conftest import APPROVER, AUTHOR, standby_draft
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store


async def test_a_retraction_publishes_a_cancel_and_sends_the_correction(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    await vetting.approve(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        sign_off_languages=["en", "es"],
    )  # fmt: skip
    # A pending update is moot once the bulletin is withdrawn.
    await vetting.edit_bulletin(
        FakeUnitOfWork(store), deps=deps, actor=AUTHOR, bulletin_id=bulletin_id, language="en",
        changes={"headline": "Riverton Police: an update"},
    )  # fmt: skip
    clock.advance(minutes=30)

    view = await publishing.retract(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        reason_code="vetter.superseded",
    )  # fmt: skip

    assert view.bulletin.state == "retracted"
    assert view.bulletin.current_version == 3
    assert [(v.msg_type, v.state) for v in view.versions] == [
        ("Alert", "published"),
        ("Update", "rejected"),
        ("Cancel", "published"),
    ]
    assert view.versions[1].reason_codes == ("vetting.superseded_by_retraction",)
    cancel = view.latest
    assert cancel.references == (f"{bulletin_id}:1",)
    assert cancel.published_at == clock()
    (retracted,) = store.events(BulletinRetracted)
    assert (retracted.version, retracted.reason_code) == (3, "vetter.superseded")
    corrections = [o for o in store.orders.values() if o.aggregate_version == 3]
    assert corrections
    assert {o.purpose for o in corrections} == {"retraction"}
    recipients = {r.id for r in deps.department.community()}
    assert {o.recipient_id for o in corrections} == recipients
    assert store.timeline[-1].action == "retracted"
    assert store.timeline[-1].detail["deliveries_requested"] == len(corrections)


async def test_only_a_published_bulletin_is_retracted(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    with pytest.raises(VettingError) as refused:
        await publishing.retract(
            FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
            reason_code="vetter.superseded",
        )  # fmt: skip
    assert refused.value.code == "vetting.not_published"
    assert store.events(BulletinRetracted) == []


def test_delivery_purposes_follow_the_cap_message_type() -> None:
    assert publishing.purpose_of("Alert") == "bulletin"
    assert publishing.purpose_of("Update") == "update"
    assert publishing.purpose_of("Cancel") == "retraction"
