"""Receipt use cases with in-memory fakes: a signed link, once or twice, expired, forged."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from services.rumor_control import receipts
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.domain import DeliveryRow, InvalidLink, NotFound
from tests.unit.rumor_control.conftest import standby_draft
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store


def _token(
    deps: RumorControlDeps, bulletin_id: uuid.UUID, recipient_id: uuid.UUID, version: int = 1
) -> str:
    url = deps.receipt_url(bulletin_id, version, recipient_id)
    return parse_qs(urlsplit(url).query)["token"][0]


def _sent(
    store: Store,
    clock: FakeClock,
    bulletin_id: uuid.UUID,
    recipient_id: uuid.UUID,
    *,
    version: int = 1,
    state: str = "delivered",
) -> None:
    store.deliveries[uuid.uuid4()] = DeliveryRow(
        uuid.uuid4(), bulletin_id, version, recipient_id, "webhook", "es", "bulletin", state, 1,
        None, clock(),
    )  # fmt: skip


async def test_a_receipt_is_recorded_once_and_counted_again(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    liaison = deps.department.liaisons[0]
    _sent(store, clock, bulletin_id, liaison.id)
    token = _token(deps, bulletin_id, liaison.id)

    first = await receipts.record_receipt(FakeUnitOfWork(store), deps=deps, token=token)
    clock.advance(minutes=5)
    again = await receipts.record_receipt(FakeUnitOfWork(store), deps=deps, token=token)

    assert first.first_time
    assert not again.first_time
    assert first.recipient == liaison
    (receipt,) = store.receipts.values()
    assert receipt.seen_count == 2
    assert receipt.last_seen_at == clock()
    assert store.actions(bulletin_id).count("receipt_confirmed") == 1


async def test_an_expired_or_forged_link_is_refused(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    _sent(store, clock, bulletin_id, deps.department.liaisons[0].id)
    token = _token(deps, bulletin_id, deps.department.liaisons[0].id)
    with pytest.raises(InvalidLink):
        await receipts.record_receipt(FakeUnitOfWork(store), deps=deps, token=token + "x")
    clock.advance(days=deps.settings.rumor_receipt_link_ttl_days + 1)
    with pytest.raises(InvalidLink):
        await receipts.record_receipt(FakeUnitOfWork(store), deps=deps, token=token)
    assert store.receipts == {}


async def test_a_link_to_an_unknown_bulletin_is_not_found(
    deps: RumorControlDeps, store: Store
) -> None:
    token = _token(deps, uuid.uuid4(), deps.department.liaisons[0].id)
    with pytest.raises(NotFound):
        await receipts.record_receipt(FakeUnitOfWork(store), deps=deps, token=token)


async def test_deliveries_and_receipts_of_a_bulletin(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    liaison = deps.department.liaisons[0]
    _sent(store, clock, bulletin_id, liaison.id)
    token = _token(deps, bulletin_id, liaison.id)
    await receipts.record_receipt(FakeUnitOfWork(store), deps=deps, token=token)

    sent, received = await receipts.deliveries_and_receipts(
        FakeUnitOfWork(store), bulletin_id=bulletin_id
    )

    assert [d.recipient_id for d in sent] == [liaison.id]
    assert [r.recipient_id for r in received] == [liaison.id]
    with pytest.raises(NotFound):
        await receipts.deliveries_and_receipts(FakeUnitOfWork(store), bulletin_id=uuid.uuid4())


@pytest.mark.parametrize(
    ("version", "recipient", "state"),
    [
        (2, "sent-to", "delivered"),  # a version never sent to anyone
        (-5, "sent-to", "delivered"),
        (999, "sent-to", "delivered"),
        (2**63, "sent-to", "delivered"),
        (1, "other", "delivered"),  # a recipient the version was not sent to
        (1, "unknown", "delivered"),  # nobody the department knows
        (1, "sent-to", "skipped"),  # superseded before it went out: nobody has the link
    ],
)
async def test_a_receipt_only_for_a_version_sent_to_that_recipient(
    deps: RumorControlDeps,
    store: Store,
    clock: FakeClock,
    version: int,
    recipient: str,
    state: str,
) -> None:
    bulletin_id = await standby_draft(deps, store, clock)
    sent_to, other = deps.department.liaisons[0].id, deps.department.liaisons[1].id
    _sent(store, clock, bulletin_id, sent_to, state=state)
    who = {"sent-to": sent_to, "other": other, "unknown": uuid.uuid4()}[recipient]
    token = _token(deps, bulletin_id, who, version)

    with pytest.raises(InvalidLink):
        await receipts.record_receipt(FakeUnitOfWork(store), deps=deps, token=token)
    assert store.receipts == {}
