"""The engine's reason classes as the contract's failure reasons (router and rumor_control)."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from schemas.deliveries import DeliveryFailureReason
from services.common.delivery import REASON_CLASSES, contract_reason, stored_reason


@pytest.mark.parametrize("reason", REASON_CLASSES)
def test_every_engine_reason_has_a_contract_reason(reason: Any) -> None:
    assert contract_reason(reason) in get_args(DeliveryFailureReason)
    assert stored_reason(reason) == contract_reason(reason)


def test_a_receiver_asking_to_come_back_later_is_the_receivers_trouble() -> None:
    assert contract_reason("rate_limited") == "http_5xx"
    assert contract_reason("timeout") == "timeout"


def test_a_reason_no_version_knows_reads_as_internal() -> None:
    assert stored_reason(None) is None
    assert stored_reason("something_new") == "internal"
