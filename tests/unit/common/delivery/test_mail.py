"""An e-mail composed straight to bytes reads back as the message it was meant to be."""

from __future__ import annotations

import email
import email.policy
import uuid
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.delivery import DeliveryError, mail
from services.common.delivery.mail import Address, compose_mail, parse_address

_FROM = Address(name="Aviso", spec="aviso@police.example")


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    content = body.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")  # as a mail reader shows it


def _compose(**overrides: str) -> bytes:
    fields = {
        "to": "Sgt. Rivera <spoc@police.example>",
        "subject": "ALERT: operation expected",
        "text": "Line one\nLine two\n",
        "delivery_id": "3f1c2a7e-0000-4000-8000-000000000001",
        "language": "en",
    } | overrides
    return compose_mail(sender=_FROM, **fields).as_bytes()


def test_an_ascii_message_reads_back_with_every_header() -> None:
    raw = _compose()
    message = _parse(raw)
    assert message["From"] == "Aviso <aviso@police.example>"
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Sgt. Rivera", "spoc@police.example")
    assert message["Subject"] == "ALERT: operation expected"
    # The Message-ID's domain is the sender address's, not the end of its display form.
    assert message["Message-ID"] == "<3f1c2a7e-0000-4000-8000-000000000001@police.example>"
    assert message["Aviso-Delivery-Id"] == "3f1c2a7e-0000-4000-8000-000000000001"
    assert message["Content-Language"] == "en"
    assert message["Content-Transfer-Encoding"] == "7bit"
    assert message["Date"] is not None
    assert _text(message) == "Line one\nLine two\n"
    assert b"\r\n\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_spanish_text_goes_8bit_where_the_relay_allows_else_quoted_printable() -> None:
    mail = compose_mail(
        sender=_FROM,
        to="spoc@police.example",
        subject="Aviso: operación cerca de la escuela",
        text="Área:\u2028Este\nmañana\n",
        delivery_id="d-1",
        language="es",
    )
    eight = _parse(mail.as_bytes(eight_bit=True))
    seven = mail.as_bytes(eight_bit=False)
    assert eight["Content-Transfer-Encoding"] == "8bit"
    assert _parse(seven)["Content-Transfer-Encoding"] == "quoted-printable"
    assert seven.isascii()
    for message in (eight, _parse(seven)):
        assert message["Subject"] == "Aviso: operación cerca de la escuela"
        assert _text(message) == "Área:\u2028Este\nmañana\n"


def test_a_line_too_long_for_smtp_is_quoted_printable_even_with_8bitmime() -> None:
    text = "x" * 2_000 + "\nshort\n"
    raw = _compose(text=text)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    message = _parse(raw)
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert _text(message) == text


def test_a_nul_in_the_text_is_quoted_printable() -> None:
    message = _parse(_compose(text="before\x00after\n"))
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert _text(message) == "before\x00after\n"


@pytest.mark.parametrize(
    "to", ["", "not an address", "a@", "@example.org", "a@b, c@d", "a@b@c", "<>", "x@exa mple"]
)
def test_anything_but_one_address_is_an_invalid_address(to: str) -> None:
    with pytest.raises(DeliveryError) as raised:
        _compose(to=to)
    assert raised.value.reason == "invalid_address"
    assert raised.value.permanent


def test_an_international_address_needs_smtputf8_and_a_name_is_encoded() -> None:
    plain = compose_mail(
        sender=_FROM, to="Señora Núñez <spoc@police.example>", subject="s", text="t",
        delivery_id="d",
    )  # fmt: skip
    assert not plain.needs_smtputf8
    assert b"=?utf-8?" in plain.head
    assert _parse(plain.as_bytes())["To"] == "Señora Núñez <spoc@police.example>"
    wide = compose_mail(sender=_FROM, to="núñez@policía.example", subject="s", text="t",
                        delivery_id="d")  # fmt: skip
    assert wide.needs_smtputf8
    assert wide.recipient == "núñez@policía.example"


def test_a_language_that_is_not_a_tag_becomes_english() -> None:
    assert _parse(_compose(language="es-MX"))["Content-Language"] == "es-MX"
    assert _parse(_compose(language="es\r\nBcc: x@y"))["Content-Language"] == "en"
    assert b"Bcc" not in _compose(language="es\r\nBcc: x@y")


def test_parse_address_keeps_the_display_name_apart() -> None:
    assert parse_address("Aviso <aviso@police.example>") == _FROM
    assert _FROM.domain == "police.example"


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300), eight_bit=st.booleans())
def test_any_body_reads_back_as_written(text: str, eight_bit: bool) -> None:
    mail = compose_mail(sender=_FROM, to="a@example.org", subject="s", text=text, delivery_id="d")
    message = _parse(mail.as_bytes(eight_bit=eight_bit))
    # Line ends travel as CRLF and come back as LF; the characters all arrive.
    expected = mail.text.replace("\r\n", "\n").replace("\r", "\n")
    assert _text(message).rstrip("\n") == expected.rstrip("\n")
    assert mail.as_bytes(eight_bit=eight_bit).endswith(b"\r\n")


def test_a_recipient_is_parsed_once_for_every_mail_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # A contact's address is the same on every alert: parsing it each time was ~1 % of
    # router's CPU at 50/s.
    parsed: list[object] = []
    original = mail.getaddresses

    def counting(values: list[str]) -> list[tuple[str, str]]:
        parsed.append(values)
        return original(values)

    monkeypatch.setattr(mail, "getaddresses", counting)
    to = f"SPOC <spoc-{uuid.uuid4().hex}@police.example>"
    first = compose_mail(sender=_FROM, to=to, subject="s", text="t", delivery_id="d1")
    second = compose_mail(sender=_FROM, to=to, subject="s", text="t", delivery_id="d2")
    assert len(parsed) == 1
    assert first.recipient == second.recipient
    assert b"To: SPOC <spoc-" in second.head
    with pytest.raises(DeliveryError):  # an invalid one raises every time, never kept
        compose_mail(sender=_FROM, to="a@b, c@d", subject="s", text="t", delivery_id="d3")
    with pytest.raises(DeliveryError):
        compose_mail(sender=_FROM, to="a@b, c@d", subject="s", text="t", delivery_id="d4")
