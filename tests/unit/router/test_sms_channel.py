"""The `sms` channel in router: directory numbers, the alert's short code, its text, replies."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import cast

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.delivery import SmsOutbound
from services.router import alerting
from services.router.delivery import RouterDeliveryPlan
from services.router.domain import Channels, DirectoryDocument, alert_id_for, validate_directory
from services.router.domain.sms import parse_reply, sms_code, sms_text
from tests.unit.router.fakes import (
    SPOC,
    FakeDeps,
    FakeUnitOfWork,
    directory_document,
    make_deps,
    received,
    with_directory,
)
from tests.unit.router.test_delivery_plan import record_of

SPOC_NUMBER = "+15555550142"


def sms_directory() -> DirectoryDocument:
    """The usual directory, the SPOC reachable by SMS as well."""
    document = directory_document().model_dump(mode="json")
    document["people"][0]["channels"]["sms"] = SPOC_NUMBER
    return DirectoryDocument.model_validate(document)


def test_a_number_must_be_e164_and_the_refusal_never_quotes_it() -> None:
    assert Channels(sms="+15555550100").address("sms") == "+15555550100"
    for bad in ("5555550100", "+1 555 555 0100", "+0155555501", "+15555", "tel:+15"):
        with pytest.raises(ValidationError) as refused:
            Channels(sms=bad)
        (error,) = refused.value.errors()
        assert "E.164" in error["msg"]
        assert bad not in error["msg"]


def test_an_sms_number_alone_makes_a_person_reachable() -> None:
    document = directory_document().model_dump(mode="json")
    document["people"][0]["channels"] = {"sms": SPOC_NUMBER}
    assert validate_directory(DirectoryDocument.model_validate(document)) == []
    document["people"][0]["channels"] = {"phone": "+1 555 555 0142"}  # read by people only
    errors = validate_directory(DirectoryDocument.model_validate(document))
    assert [e.path for e in errors] == ["spoc.person_id"]


def test_the_code_is_stable_short_and_unambiguous() -> None:
    alert_id = uuid.uuid4()
    code = sms_code(alert_id)
    assert code == sms_code(alert_id)
    assert len(code) == 4
    assert not set(code) & set("01OIL")
    codes = {sms_code(uuid.uuid4()) for _ in range(200)}
    assert len(codes) > 190  # spread out: two open alerts rarely share one


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("1", None),
        ("ACK", None),
        ("ok", None),
        ("Sí", None),
        ("si.", None),
        ("1 A7K2", "A7K2"),
        ("a7k2 OK", "A7K2"),
        (" SÍ, A7K2 ", "A7K2"),
    ],
)
def test_replies_that_acknowledge(text: str, code: str | None) -> None:
    reply = parse_reply(text)
    assert reply is not None
    assert reply.code == code


@pytest.mark.parametrize("text", ["", "2", "no", "STOP", "1 2 3", "OK A7K", "ok A0K2", "hello 1"])
def test_replies_that_do_not(text: str) -> None:
    assert parse_reply(text) is None


def test_the_text_fits_one_segment_for_a_usual_alert_and_asks_for_the_code() -> None:
    headline = "HIGH URGENCY - Advance notice of a federal immigration operation - East side"
    text = sms_text(code="A7K2", headline=headline, acknowledgeable=True)
    assert text.startswith("Aviso A7K2: HIGH URGENCY")
    assert text.endswith("Reply 1 A7K2 to acknowledge.")
    assert len(text) <= 160
    long = sms_text(code="A7K2", headline="x" * 300, acknowledgeable=False)
    assert "Reply" not in long
    assert len(long) < 140


async def test_the_spocs_alert_goes_by_sms_with_its_code_and_no_number_is_stored(
    tmp_path: Path,
) -> None:
    deps: FakeDeps = make_deps(tmp_path)
    with_directory(deps.store, sms_directory())
    notice = received()
    uow = FakeUnitOfWork(deps.store)
    await alerting.open_alert(uow, deps=deps, notice=notice)
    await uow.commit()
    alert_id = alert_id_for(notice.notice_id)

    orders = [o for o in deps.store.orders if o.recipient_id == SPOC]
    assert sorted(o.channel for o in orders) == ["email", "sms", "webhook"]
    (order,) = [o for o in orders if o.channel == "sms"]
    plan = RouterDeliveryPlan(deps, views=lambda _session: FakeUnitOfWork(deps.store))
    message = await plan.resolve(cast(AsyncSession, None), record_of(order))

    assert isinstance(message, SmsOutbound)
    assert message.to == SPOC_NUMBER
    code = sms_code(alert_id)
    assert message.text.startswith(f"Aviso {code}: ")
    assert message.text.endswith(f"Reply 1 {code} to acknowledge.")
    assert "token=" not in message.text  # no link: the reply is the acknowledgement
    assert SPOC_NUMBER.lstrip("+") not in str(order.context)
    assert SPOC_NUMBER.lstrip("+") not in str(deps.store.entries(alert_id))
    assert SPOC_NUMBER.lstrip("+") not in str(deps.store.outbox)
