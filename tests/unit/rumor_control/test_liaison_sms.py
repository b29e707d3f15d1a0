"""Liaisons by SMS from the department file: a validated number, bulletins in their language."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.common.delivery import DeliveryError, SmsOutbound
from services.rumor_control.config import PACKAGE_DIR
from services.rumor_control.department import DepartmentConfig
from services.rumor_control.deps import RumorControlDeps
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store
from tests.unit.rumor_control.test_delivery_plan import _order, _plan, _published, _record, _resolve

NUMBER = "+15557650601"


def _file(sms: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PACKAGE_DIR / "department.yaml").read_text("utf-8"))
    data["liaisons"][0]["sms"] = sms
    return data


@pytest.mark.parametrize("sms", ["+1555 765 0601", "15557650601", "+05557650601", 15557650601])
def test_a_bad_number_names_the_liaison_and_never_the_number(sms: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        DepartmentConfig.model_validate(_file(sms))
    message = str(raised.value)
    assert "Casa Hispana Community Center" in message
    assert "E.164" in message
    assert "765" not in message


def test_a_liaison_with_a_number_is_reachable_by_sms_and_its_repr_hides_it() -> None:
    liaison = DepartmentConfig.model_validate(_file(NUMBER)).liaisons[0]
    assert liaison.channels() == ("webhook", "email", "sms")
    assert NUMBER not in repr(liaison)
    only_sms = {"id": str(uuid.uuid4()), "name": "Text only", "sms": NUMBER}
    data = _file(None)
    data["liaisons"].append(only_sms)
    assert DepartmentConfig.model_validate(data).liaisons[-1].channels() == ("sms",)


async def test_a_published_bulletin_goes_to_the_liaisons_number_in_its_language(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    department = DepartmentConfig.model_validate(_file(NUMBER))
    deps = replace(deps, department=department)
    liaison = department.liaisons[0]
    bulletin_id = await _published(deps, store, clock)
    order = _order(store, liaison.id, "sms")
    assert order.language == liaison.language == "es"
    outbound = await _resolve(_plan(deps, FakeUnitOfWork(store)), _record(order, clock))
    assert isinstance(outbound, SmsOutbound)
    assert outbound.to == NUMBER
    version = store.versions[bulletin_id][1]
    assert outbound.text == version.texts["es"]["sms"]

    # The number removed from the file before the send: nothing to send it to.
    without = replace(deps, department=DepartmentConfig.model_validate(_file(None)))
    with pytest.raises(DeliveryError) as raised:
        await _resolve(_plan(without, FakeUnitOfWork(store)), _record(order, clock))
    assert raised.value.reason == "no_address"
