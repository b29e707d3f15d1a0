"""A plain-text e-mail composed straight to the bytes SMTP carries.

Python's `EmailMessage` parses every header it is given into a structured object and
folds each again when the message is flattened: about a millisecond of CPU for one alert
e-mail, more than the whole SMTP dialogue with the relay. An alert or bulletin e-mail
is always the same shape (one sender, one recipient, a subject, a plain-text body), so
it is written here directly, with the standard library doing the parts that need care:
`email.utils` parses and formats the addresses, `email.header` encodes a subject that
is not plain ASCII (RFC 2047), `binascii` makes the quoted-printable body a relay without
8BITMIME needs.

Header text has been made one clean line by `safe_header` before it gets here; a
recipient that is not exactly one address raises `DeliveryError("invalid_address")`.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from functools import lru_cache

from services.common.delivery.errors import DeliveryError
from services.common.delivery.headers import safe_body, safe_header

__all__ = ["DELIVERY_ID_HEADER", "Address", "Mail", "compose_mail", "parse_address"]

DELIVERY_ID_HEADER = "Aviso-Delivery-Id"

# RFC 5322: a line SHOULD stay within 78 characters and MUST within 998 octets.
_FOLD_AT = 78
_MAX_LINE = 998
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


@dataclass(frozen=True)
class Address:
    """One e-mail address: its display name (may be empty) and its addr-spec."""

    name: str
    spec: str

    @property
    def domain(self) -> str:
        """The part after the last @."""
        return self.spec.rpartition("@")[2]

    def header(self) -> str:
        """As a From or To header writes it (a name that is not ASCII encoded)."""
        if self.spec.isascii():
            return formataddr((self.name, self.spec))
        # An internationalised address travels as UTF-8 (RFC 6532, with SMTPUTF8).
        return f"{self.name} <{self.spec}>" if self.name else self.spec


@dataclass(frozen=True)
class Mail:
    """One message: its envelope addresses, its header block and its body text."""

    sender: str
    recipient: str
    head: bytes
    text: str

    @property
    def needs_smtputf8(self) -> bool:
        """An envelope address is not ASCII: the relay must offer SMTPUTF8."""
        return not (self.sender.isascii() and self.recipient.isascii())

    def as_bytes(self, *, eight_bit: bool = True) -> bytes:
        """The whole message, CRLF line ends; the body 8-bit only where `eight_bit` allows."""
        lines = _LINE_BREAK.split(self.text)
        encoded = [line.encode("utf-8") for line in lines]
        # RFC 2045: 7bit and 8bit lines are at most 998 octets and hold no NUL.
        fits = "\x00" not in self.text and all(len(line) <= _MAX_LINE for line in encoded)
        if fits and self.text.isascii():
            encoding, body = "7bit", b"\r\n".join(encoded)
        elif fits and eight_bit:
            encoding, body = "8bit", b"\r\n".join(encoded)
        else:
            encoding = "quoted-printable"
            body = binascii.b2a_qp(b"\n".join(encoded), istext=True).replace(b"\n", b"\r\n")
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        return b"%sContent-Transfer-Encoding: %s\r\n\r\n%s" % (
            self.head,
            encoding.encode(),
            body,
        )


def parse_address(value: str) -> Address:
    """`value` as one address; DeliveryError("invalid_address") unless it is exactly one.

    The standard library's parser is lenient (it drops white space inside a domain and
    takes the first word of a phrase), so the address it finds must also appear in
    `value` as written: what is sent to is what the directory says.
    """
    parsed = getaddresses([value])
    name, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    quoted = len(local) > 1 and local[0] == local[-1] == '"'
    if (
        len(parsed) != 1
        or not at
        or not local
        or not domain
        or address not in value
        or (not quoted and any(ch.isspace() or ch in "<>@,;" for ch in local))
        or any(ch.isspace() or ch in '<>@,;"' for ch in domain)
    ):
        raise DeliveryError("recipient address invalid", reason="invalid_address")
    return Address(name=name, spec=address)


def compose_mail(
    *,
    sender: Address,
    to: str,
    subject: str,
    text: str,
    delivery_id: str,
    language: str = "en",
    date: str | None = None,
) -> Mail:
    """The message `EmailSender` sends (Message-ID derived from the delivery id)."""
    recipient, recipient_header = _recipient(to)
    delivery = safe_header(delivery_id)
    tag = language if _LANGUAGE_TAG.fullmatch(language) else "en"
    head = "".join(
        f"{field}: {value}\r\n"
        for field, value in (
            ("From", _header(sender)),
            ("To", recipient_header),
            ("Subject", _unstructured("Subject", safe_header(subject))),
            ("Date", date or formatdate(usegmt=True)),
            ("Message-ID", f"<{delivery}@{sender.domain}>"),
            (DELIVERY_ID_HEADER, delivery),
            ("MIME-Version", "1.0"),
            ("Content-Type", 'text/plain; charset="utf-8"'),
            ("Content-Language", tag),
        )
    )
    return Mail(
        sender=sender.spec,
        recipient=recipient.spec,
        head=head.encode("utf-8"),
        text=safe_body(text),
    )


# A contact's address is the same on every alert: parsed and formatted once (the
# parsing was ~1 % of router's CPU at 50/s, profiled), a handful kept per process.
@lru_cache(maxsize=256)
def _recipient(to: str) -> tuple[Address, str]:
    """`to` parsed (`parse_address`, which raises for an invalid one: never kept) and as
    its To header writes it."""
    address = parse_address(safe_header(to))
    return address, address.header()


@lru_cache(maxsize=16)
def _header(address: Address) -> str:
    return address.header()


def _unstructured(field: str, value: str) -> str:
    """`value` as is when it is short plain ASCII, else RFC 2047 encoded words, folded."""
    plain = value.isascii() and "=?" not in value
    if plain and len(field) + 2 + len(value) <= _FOLD_AT:
        return value
    return Header(value, "utf-8", header_name=field).encode(linesep="\r\n")
