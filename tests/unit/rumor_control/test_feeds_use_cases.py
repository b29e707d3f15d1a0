"""Feed use cases with in-memory fakes: only published, real bulletins; drills never."""

from __future__ import annotations

import uuid

import pytest

from services.rumor_control import feeds, publishing, vetting
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import NotFound
from tests.unit.rumor_control.conftest import APPROVER, standby_draft
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store


async def _published(
    deps: RumorControlDeps, store: Store, clock: FakeClock, **fields: object
) -> uuid.UUID:
    bulletin_id = await standby_draft(deps, store, clock, **fields)
    await vetting.approve(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        sign_off_languages=["en", "es"],
    )  # fmt: skip
    return bulletin_id


async def test_the_feeds_show_the_latest_word_of_real_bulletins_only(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    real = await _published(deps, store, clock)
    drill = await _published(deps, store, clock, status="Exercise")
    clock.advance(minutes=10)
    await publishing.retract(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=real,
        reason_code="vetter.superseded",
    )  # fmt: skip

    latest = await feeds.public_entries(FakeUnitOfWork(store))
    every = await feeds.public_entries(FakeUnitOfWork(store), latest_only=False)

    assert [(b.bulletin_id, v.msg_type) for b, v in latest] == [(real, "Cancel")]
    assert [v.msg_type for _, v in every] == ["Cancel", "Alert"]
    with pytest.raises(NotFound):
        await feeds.public_version(FakeUnitOfWork(store), bulletin_id=drill, version=1)


async def test_one_published_version_comes_with_every_version_for_its_references(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await _published(deps, store, clock)
    bulletin, version, versions = await feeds.public_version(
        FakeUnitOfWork(store), bulletin_id=bulletin_id, version=1
    )
    assert bulletin.bulletin_id == bulletin_id
    assert version.state == "published"
    assert [v.version for v in versions] == [1]
    with pytest.raises(NotFound):
        await feeds.public_version(FakeUnitOfWork(store), bulletin_id=bulletin_id, version=2)
