"""Fixtures of the rumor_control use-case tests: an in-memory store, a hand-moved clock."""

from __future__ import annotations

import uuid

import pytest

from schemas.alerts import AlertAcknowledged
from services.rumor_control import notices
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import Actor
from tests.unit.rumor_control.fakes import (
    FakeClock,
    FakeUnitOfWork,
    Store,
    make_deps,
    notice,
)

AUTHOR = Actor(uuid.uuid4(), "Ana Author", "vetter")
APPROVER = Actor(uuid.uuid4(), "Beto Approver", "vetter")


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def deps(store: Store, clock: FakeClock) -> RumorControlDeps:
    return make_deps(store, clock)


@pytest.fixture
def uow(store: Store) -> FakeUnitOfWork:
    return FakeUnitOfWork(store)


def acknowledgement(notice_id: uuid.UUID, *, at: FakeClock) -> AlertAcknowledged:
    """Router's event: the SPOC acknowledged the notice's alert."""
    return AlertAcknowledged(
        alert_id=uuid.uuid4(),
        notice_id=notice_id,
        notice_version=1,
        status="Actual",
        acknowledged_by=uuid.uuid4(),
        method="api",
        step=0,
        acknowledged_at=at(),
    )


async def standby_draft(
    deps: RumorControlDeps, store: Store, clock: FakeClock, **notice_fields: object
) -> uuid.UUID:
    """A notice and its acknowledgement, as the consumers apply them: the standby's id."""
    received = notice(deps, **notice_fields)  # type: ignore[arg-type]
    await notices.apply_notice(FakeUnitOfWork(store), deps=deps, notice=received)
    await notices.acknowledge_alert(
        FakeUnitOfWork(store), deps=deps, acknowledged=acknowledgement(received.notice_id, at=clock)
    )
    bulletin_id = await notices_standby(store, received.notice_id)
    return bulletin_id


async def notices_standby(store: Store, notice_id: uuid.UUID) -> uuid.UUID:
    """The standby drafted for a notice."""
    found = await FakeUnitOfWork(store).bulletins.standby_for(notice_id)
    assert found is not None, "no standby was drafted"
    return found
