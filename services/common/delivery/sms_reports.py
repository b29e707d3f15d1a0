"""What Kannel tells Aviso after a send: delivery reports and replies (mobile-originated SMS).

Both arrive as HTTP GET callbacks whose query Kannel fills from escape codes (`%d`, `%p`, ...).
The endpoints live in the services; this module only turns a callback's parameters into
typed values, so every service reads them the same way.

Delivery reports. The sender asks for a report with a `dlr-url` that names the delivery and
signs its id (`dlr_token`), so a forged callback cannot fail someone else's delivery. Kannel's
report types (`%d`): 1 delivered to the handset, 2 not delivered to the handset, 4 buffered
by the SMSC, 8 accepted by the SMSC, 16 rejected by the SMSC.

Replies. smsbox's `sms-service` fetches `mo_get_url(base)` for every message a phone sends
to Aviso's number. The text comes raw (`%b`) with its charset (`%C`): a UCS-2 reply arrives
as UTF-16BE bytes, which a framework's UTF-8 query decoding would mangle, so
`parse_inbound` takes the raw query string.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import parse_qs

from services.common.delivery.errors import ReasonClass

__all__ = [
    "DEFAULT_DLR_MASK",
    "DLR_BUFFERED",
    "DLR_DELIVERED",
    "DLR_QUERY",
    "DLR_SMSC_ACCEPTED",
    "DLR_SMSC_REJECTED",
    "DLR_UNDELIVERED",
    "MO_QUERY",
    "DeliveryReport",
    "InboundSms",
    "InvalidCallback",
    "ReportStatus",
    "dlr_token",
    "mo_get_url",
    "parse_delivery_report",
    "parse_inbound",
]

DLR_DELIVERED = 1
DLR_UNDELIVERED = 2
DLR_BUFFERED = 4
DLR_SMSC_ACCEPTED = 8
DLR_SMSC_REJECTED = 16
# Everything that changes what Aviso knows; "buffered" (4) says nothing new.
DEFAULT_DLR_MASK = DLR_DELIVERED | DLR_UNDELIVERED | DLR_SMSC_ACCEPTED | DLR_SMSC_REJECTED

ReportStatus = Literal["accepted", "delivered", "failed"]

_STATUS_OF_TYPE: dict[int, ReportStatus] = {
    DLR_DELIVERED: "delivered",
    DLR_UNDELIVERED: "failed",
    DLR_BUFFERED: "accepted",  # still on its way: the SMSC keeps trying the handset
    DLR_SMSC_ACCEPTED: "accepted",
    DLR_SMSC_REJECTED: "failed",
}
# The escape codes Aviso's callbacks carry (Kannel substitutes them when it calls back).
DLR_QUERY = "type=%d&ts=%T&reply=%A"
MO_QUERY = "sender=%p&receiver=%P&text=%b&coding=%c&charset=%C&ts=%T"
_SMSC_ERROR = re.compile(r"\berr:([0-9A-Za-z]{1,8})\b")
_DELIVERY_ID = re.compile(r"[0-9A-Za-z-]{1,64}")
_TOKEN_LENGTH = 32


class InvalidCallback(ValueError):
    """A callback Aviso cannot use; `reason` ("malformed", "signature") is safe to log."""

    def __init__(self, reason: Literal["malformed", "signature"]) -> None:
        super().__init__(f"invalid SMS gateway callback: {reason}")
        self.reason = reason


def dlr_token(secret: bytes, delivery_id: str) -> str:
    """The signature of `delivery_id` that a delivery-report callback must carry back."""
    message = b"aviso-sms-dlr\x00" + delivery_id.encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:_TOKEN_LENGTH]


@dataclass(frozen=True)
class DeliveryReport:
    """One report about one delivery: how far the message got."""

    delivery_id: str
    status: ReportStatus
    kannel_type: int
    reason: ReasonClass | None  # set when failed: what the engine records
    smsc_error: str | None  # the SMSC's error code, when it gave one (a number, no text)
    reported_at: datetime | None


def parse_delivery_report(params: Mapping[str, str], *, secret: bytes) -> DeliveryReport:
    """Read a delivery-report callback; raises InvalidCallback if malformed or not signed."""
    delivery_id = params.get("delivery_id", "")
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise InvalidCallback("malformed")
    if not hmac.compare_digest(params.get("sig", ""), dlr_token(secret, delivery_id)):
        raise InvalidCallback("signature")
    try:
        kannel_type = int(params.get("type", ""))
    except ValueError:
        raise InvalidCallback("malformed") from None
    status = _STATUS_OF_TYPE.get(kannel_type)
    if status is None:
        raise InvalidCallback("malformed")
    # Only the error code leaves the SMSC's reply: its free text may quote the message.
    found = _SMSC_ERROR.search(params.get("reply", ""))
    return DeliveryReport(
        delivery_id=delivery_id,
        status=status,
        kannel_type=kannel_type,
        reason="rejected" if status == "failed" else None,
        smsc_error=found.group(1) if found else None,
        reported_at=_epoch(params.get("ts", "")),
    )


@dataclass(frozen=True)
class InboundSms:
    """A message a phone sent to Aviso's number. `sender` is restricted data: never log it."""

    sender: str
    receiver: str
    text: str
    received_at: datetime | None

    def __repr__(self) -> str:  # keeps the number out of tracebacks and debug output
        return f"InboundSms(receiver={self.receiver!r}, chars={len(self.text)})"


def mo_get_url(base: str) -> str:
    """The `get-url` of Kannel's sms-service that delivers replies to `base`."""
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}{MO_QUERY}"


def parse_inbound(query: str | bytes) -> InboundSms:
    """Read a reply callback from its raw query string; raises InvalidCallback if malformed."""
    raw = query.decode("latin-1") if isinstance(query, bytes) else query
    # latin-1 keeps every byte as one character, so the text's bytes survive for decoding.
    fields = parse_qs(raw, keep_blank_values=True, encoding="latin-1")
    sender = _single(fields, "sender")
    receiver = _single(fields, "receiver")
    if not sender or not receiver:
        raise InvalidCallback("malformed")
    data = _single(fields, "text").encode("latin-1")
    text = _decode(data, _single(fields, "charset"), _single(fields, "coding"))
    return InboundSms(
        sender=sender,
        receiver=receiver,
        text=text,
        received_at=_epoch(_single(fields, "ts")),
    )


def _single(fields: Mapping[str, list[str]], name: str) -> str:
    values = fields.get(name) or [""]
    return values[0]


def _decode(data: bytes, charset: str, coding: str) -> str:
    """The reply's text: UCS-2 arrives as UTF-16BE, everything else as UTF-8 (or CP-1252)."""
    charset = charset.upper()
    if coding == "2" or charset in {"UTF-16BE", "UCS-2", "UCS2"}:
        return data.decode("utf-16-be", errors="replace")
    if charset in {"WINDOWS-1252", "CP1252", "ISO-8859-1", "LATIN1"}:
        return data.decode("cp1252", errors="replace")
    return data.decode("utf-8", errors="replace")


def _epoch(value: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
