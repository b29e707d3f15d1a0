"""A handed-off record is what a claim would read back from the row the accept inserts,
built from the order without the row and its context's trip through JSON."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.delivery import handoff
from services.common.delivery.insert_query import pending_row
from services.common.delivery.records import DeliveryOrder, DeliveryRecord, record_from_row
from services.common.delivery.store import Accepted

NOW = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)

ROUTER_CONTEXT = {
    "headline": "DRILL: operation notice",
    "body": "Texto releasable, con acentos: año, señal.\n" * 20,
    "status": "Exercise",
    "step": 0,
    "repeat": None,
}


def _accepted(context: dict[str, Any]) -> Accepted:
    order = DeliveryOrder(
        delivery_id=uuid.uuid4(),
        aggregate_id=uuid.uuid4(),
        aggregate_version=3,
        recipient_id=uuid.uuid4(),
        channel="webhook",
        purpose="alert",
        language="es",
        context=context,
        correlation_id="corr-1",
    )
    return Accepted(order, NOW + timedelta(hours=2))


def _as_read_back(accepted: Accepted) -> DeliveryRecord:
    """What the record was built from until now: the row as stored, read back."""
    row = pending_row(accepted.order, accepted.give_up_at, None, now=NOW, owner=None)
    row.update(context=json.dumps(row["context"]), destination_key=None, last_error_class=None)
    return record_from_row(row)


@pytest.mark.parametrize(
    "context",
    [
        ROUTER_CONTEXT,
        {"ratio": 0.1, "flag": True, "none": None},
        # Not plain scalars: these still come back as JSON gives them (a list for a tuple).
        {"steps": (1, 2), "nested": {"a": [1, "x"]}},
        {},
    ],
)
def test_a_handed_off_record_is_the_row_read_back(context: dict[str, Any]) -> None:
    accepted = _accepted(context)

    record = handoff._record(accepted, NOW)

    assert record == _as_read_back(accepted)
    assert record.context is not accepted.order.context  # a copy: the order's stays its own


def test_a_plain_context_is_not_sent_through_json(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: object, **__: object) -> str:
        raise AssertionError("the context went through JSON")

    monkeypatch.setattr(handoff.json, "dumps", refused)

    record = handoff._record(_accepted(ROUTER_CONTEXT), NOW)

    assert record.context == ROUTER_CONTEXT
