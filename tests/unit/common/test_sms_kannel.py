"""The Kannel sender's request, delivery-report and reply parsing, and the sms channel."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from services.common.delivery import (
    DeliveryError,
    KannelSender,
    MissingSender,
    SenderRegistry,
    SmsOutbound,
    SmsReceipt,
)
from services.common.delivery.sms_reports import (
    InvalidCallback,
    dlr_token,
    mo_get_url,
    parse_delivery_report,
    parse_inbound,
)

SECRET = b"unit-secret"


def sender(**overrides: object) -> KannelSender:
    options: dict[str, object] = {
        "sendsms_url": "http://127.0.0.1:1/cgi-bin/sendsms",
        "username": "aviso",
        "password": "pw",
        "sender": "12345",
        "dlr_url": "http://aviso.local/sms/dlr",
        "dlr_secret": SECRET,
        "max_segments": 3,
    }
    options.update(overrides)
    return KannelSender(**options)  # type: ignore[arg-type]


def test_english_goes_as_gsm7_and_spanish_with_acute_vowels_as_ucs2() -> None:
    params, count = sender().plan(to="+15550001111", text="Drill: reply 1", delivery_id="d1")
    assert (params["coding"], params["charset"], count.segments) == ("0", "UTF-8", 1)
    assert params["from"] == "12345"
    params, count = sender().plan(to="+15550001111", text="Información", delivery_id="d1")
    assert (params["coding"], count.encoding) == ("2", "UCS-2")
    # é, ñ and ¿ are in GSM 03.38: no need for UCS-2.
    params, _ = sender().plan(to="+15550001111", text="¿Qué pasó? ñ", delivery_id="d1")
    assert params["coding"] == "2"  # ó is not
    params, _ = sender().plan(to="+15550001111", text="¿Qué? Año", delivery_id="d1")
    assert params["coding"] == "0"


def test_the_dlr_url_names_and_signs_the_delivery_and_asks_for_the_report_type() -> None:
    params, _ = sender().plan(to="+15550001111", text="hi", delivery_id="abc-1")
    assert params["dlr-mask"] == "27"  # delivered, not delivered, SMSC accepted, SMSC rejected
    url = urlsplit(params["dlr-url"])
    assert url.path == "/sms/dlr"
    query = dict(parse_qsl(url.query))
    assert query["delivery_id"] == "abc-1"
    assert query["sig"] == dlr_token(SECRET, "abc-1")
    assert query["type"] == "%d"  # filled in by Kannel


def test_no_dlr_url_means_no_report_asked_for() -> None:
    params, _ = sender(dlr_url=None).plan(to="+15550001111", text="hi", delivery_id="d")
    assert "dlr-url" not in params
    assert "dlr-mask" not in params


@pytest.mark.parametrize("number", ["+1555 0001111", "5550001111;1", "", "+1", "abc"])
def test_an_unusable_number_fails_for_good_without_naming_it(number: str) -> None:
    with pytest.raises(DeliveryError) as failed:
        sender().plan(to=number, text="hi", delivery_id="d")
    assert failed.value.reason == "invalid_address"
    assert failed.value.permanent
    assert not number or number not in str(failed.value)


def test_too_long_or_empty_texts_are_refused_before_kannel_would_cut_them() -> None:
    with pytest.raises(DeliveryError) as too_long:
        sender().plan(to="+15550001111", text="a" * (153 * 3 + 1), delivery_id="d")
    assert too_long.value.permanent
    sender().plan(to="+15550001111", text="a" * (153 * 3), delivery_id="d")  # exactly 3
    with pytest.raises(DeliveryError) as empty:
        sender().plan(to="+15550001111", text="", delivery_id="d")
    assert empty.value.permanent


def test_a_dlr_url_without_a_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="secret"):
        sender(dlr_secret=b"")


@pytest.mark.parametrize(
    ("kannel_type", "status", "reason"),
    [(1, "delivered", None), (2, "failed", "rejected"), (4, "accepted", None),
     (8, "accepted", None), (16, "failed", "rejected")],
)  # fmt: skip
def test_report_types_map_to_accepted_delivered_failed(
    kannel_type: int, status: str, reason: str | None
) -> None:
    report = parse_delivery_report(
        {"delivery_id": "d-9", "sig": dlr_token(SECRET, "d-9"), "type": str(kannel_type),
         "ts": "1795843061", "reply": "id:1 sub:001 dlvrd:000 stat:UNDELIV err:0B1 text:Hola"},
        secret=SECRET,
    )  # fmt: skip
    assert (report.delivery_id, report.status, report.reason) == ("d-9", status, reason)
    assert report.smsc_error == "0B1"  # the code only: the reply's text quotes the message
    assert report.reported_at is not None


def test_a_forged_or_malformed_report_is_refused() -> None:
    good = {"delivery_id": "d-9", "sig": dlr_token(SECRET, "d-9"), "type": "2"}
    with pytest.raises(InvalidCallback) as forged:
        parse_delivery_report({**good, "delivery_id": "d-10"}, secret=SECRET)
    assert forged.value.reason == "signature"
    for broken in ({**good, "type": "x"}, {**good, "type": "3"}, {**good, "delivery_id": ""}):
        with pytest.raises(InvalidCallback):
            parse_delivery_report(broken, secret=SECRET)


def test_replies_decode_gsm_and_ucs2_text_from_the_raw_query() -> None:
    gsm = "sender=%2B15550009999&receiver=12345&text=1+ACK&coding=0&charset=UTF-8&ts=1795843061"
    reply = parse_inbound(gsm)
    assert (reply.sender, reply.receiver, reply.text) == ("+15550009999", "12345", "1 ACK")
    ucs2 = quote("Sí, señor".encode("utf-16-be"))
    reply = parse_inbound(f"sender=1555&receiver=12345&text={ucs2}&coding=2&charset=UTF-16BE")
    assert reply.text == "Sí, señor"
    assert "1555" not in repr(reply)
    with pytest.raises(InvalidCallback):
        parse_inbound("receiver=12345&text=hi")


def test_the_mo_url_keeps_the_base_query_and_adds_kannels_escape_codes() -> None:
    assert mo_get_url("http://a/mo?key=k").startswith("http://a/mo?key=k&sender=%p&")
    assert mo_get_url("http://a/mo").startswith("http://a/mo?sender=%p&")


class FakeSms:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, *, to: str, text: str, delivery_id: str) -> SmsReceipt:
        self.sent.append((to, text, delivery_id))
        return SmsReceipt(encoding="GSM-7", segments=1)

    async def close(self) -> None:
        pass


async def test_the_registry_sends_sms_on_its_own_sender_and_returns_the_receipt() -> None:
    fake = FakeSms()
    registry = SenderRegistry(sms=fake)
    assert registry.has("sms")
    assert not registry.has("email")
    receipt = await registry.send(SmsOutbound(to="+15550001111", text="hi"), delivery_id="d")
    assert receipt == SmsReceipt(encoding="GSM-7", segments=1)
    assert fake.sent == [("+15550001111", "hi", "d")]
    with pytest.raises(MissingSender):
        SenderRegistry().require(["sms"])


def test_sms_urls_in_log_text_lose_numbers_texts_and_credentials() -> None:
    # httpx logs every sendsms request it makes; uvicorn's access log every reply callback.
    from services.common.logging.redaction import scrub_text

    sendsms = (
        "HTTP Request: GET http://127.0.0.1:13013/cgi-bin/sendsms?username=aviso&password=s3cr"
        "et&to=%2B15557654321&text=Hola&charset=UTF-8&coding=0&from=12345 HTTP/1.1 202"
    )
    reply = "GET /sms/replies?key=shared-s3cret&sender=%2B15557654321&receiver=12345&text=1 204"
    for line in (sendsms, reply):
        scrubbed = scrub_text(line)
        assert "15557654321" not in scrubbed
        assert "s3cr" not in scrubbed
        assert "Hola" not in scrubbed
    assert "coding=0" in scrub_text(sendsms)  # what is not restricted stays readable


def test_kannel_routes_community_keywords_to_their_url_and_the_rest_to_replies(
    tmp_path: Path,
) -> None:
    from deploy.local import kannel
    from services.rumor_control.community.keywords import KEYWORDS

    ports = {"admin": 1, "smsbox": 2, "smsc": 3, "sendsms": 4}
    config = kannel.render_config(
        kannel.KannelLayout(tmp_path), ports=ports, password="p",
        mo_url="http://r/sms/replies?key=k", keywords_url="http://c/sms/keywords?key=k",
    )  # fmt: skip
    groups = config.split("group = sms-service")[1:]
    default, keywords = groups
    assert "keyword = default" in default
    assert "http://r/sms/replies?key=k&sender=%p" in default
    words = {keywords.split("keyword = ")[1].split("\n")[0]}
    words |= set(keywords.split('aliases = "')[1].split('"')[0].split(";"))
    assert words == {word.lower() for word in KEYWORDS}
    assert "http://c/sms/keywords?key=k&sender=%p" in keywords
    assert "max-messages = 0" in keywords  # Aviso replies itself, after its commit
    assert "http-request-retry" not in config  # a repeated reply would act twice
