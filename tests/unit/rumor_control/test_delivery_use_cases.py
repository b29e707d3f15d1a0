"""The delivery use case with fakes (the shared delivery engine will replace it)."""

from __future__ import annotations

import uuid

import pytest

from schemas.deliveries import DeliveryRequested
from services.common.delivery import DeliveryError
from services.rumor_control.delivery.deliver import deliver
from services.rumor_control.deps import RumorControlDeps
from tests.unit.rumor_control.fakes import FakeClock, FakeSender, FakeUnitOfWork, Store


def _request(
    deps: RumorControlDeps, clock: FakeClock, recipient_id: uuid.UUID
) -> DeliveryRequested:
    return DeliveryRequested(
        delivery_id=uuid.uuid4(), origin="rumor_control", aggregate_id=uuid.uuid4(),
        aggregate_version=1, purpose="bulletin", recipient_id=recipient_id, channel="webhook",
        language="es", status="Actual", headline="Aviso", body="Texto", requested_at=clock(),
    )  # fmt: skip


async def test_a_request_is_sent_once_with_a_receipt_link_and_recorded(
    deps: RumorControlDeps, store: Store, clock: FakeClock, sender: FakeSender
) -> None:
    request = _request(deps, clock, deps.department.liaisons[0].id)
    await deliver(FakeUnitOfWork(store), deps=deps, request=request)
    await deliver(FakeUnitOfWork(store), deps=deps, request=request)  # a redelivery

    ((recipient, sent, url),) = sender.sent
    assert recipient.id == request.recipient_id
    assert sent == request
    assert "/v1/receipts?token=" in url
    assert store.deliveries[request.delivery_id].outcome == "sent"
    assert store.actions(request.aggregate_id) == ["delivered"]


async def test_a_refused_delivery_is_recorded_and_a_transient_one_raises(
    deps: RumorControlDeps, store: Store, clock: FakeClock, sender: FakeSender
) -> None:
    refused = _request(deps, clock, deps.department.liaisons[0].id)
    sender.fail = DeliveryError("410 Gone", permanent=True)
    await deliver(FakeUnitOfWork(store), deps=deps, request=refused)
    assert store.deliveries[refused.delivery_id].outcome == "failed"

    transient = _request(deps, clock, deps.department.liaisons[0].id)
    sender.fail = DeliveryError("timeout", permanent=False)
    with pytest.raises(DeliveryError):
        await deliver(FakeUnitOfWork(store), deps=deps, request=transient)
    assert transient.delivery_id not in store.deliveries
