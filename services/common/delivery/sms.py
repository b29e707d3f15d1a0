"""SMS through Kannel's HTTP `sendsms` interface (smsbox), one request per message.

Coding: GSM-7 (`coding=0`) when every character is in the GSM 03.38 alphabet, UCS-2
(`coding=2`) otherwise; the text always travels as UTF-8 (`charset=UTF-8`) and Kannel
converts it. Spanish with á, í, ó or ú goes as UCS-2; é, ñ, ü, ¿ and ¡ alone fit GSM-7.

Long texts: Kannel splits them into concatenated segments itself (its sendsms-user has
`concatenation = true` and `max-messages` at least `kannel_max_segments`). Kannel knows the
SMSC link's limits and writes the concatenation header with one reference number per
message, and one HTTP request stays one atomic "accepted": were Aviso to send each segment
with its own UDH, a crash or timeout between segments would leave a handset with half a
message and a retry would repeat the other half. Aviso counts the segments beforehand
(`services.common.sms_segments`) and refuses a text longer than `kannel_max_segments`,
because Kannel silently drops the parts beyond `max-messages` and still answers 202.

Delivery reports: with `kannel_dlr_url` set, each request carries a `dlr-url` naming the
delivery and signing its id (see `sms_reports`). Phone numbers are never logged, and no
error message holds one.
"""

from __future__ import annotations

import copy
import re
from urllib.parse import urlencode

import httpx
import structlog

from services.common.delivery.errors import DeliveryError
from services.common.delivery.registry import SmsReceipt
from services.common.delivery.sms_reports import DEFAULT_DLR_MASK, DLR_QUERY, dlr_token
from services.common.settings import CommonSettings
from services.common.sms_segments import SmsCount, count_segments

__all__ = ["KannelSender", "is_e164"]

log = structlog.get_logger(__name__)

# E.164 with or without "+", or a short code. Kannel reads a space in `to` as "and another
# receiver", so anything else must never reach it.
_PHONE = re.compile(r"\+?[0-9]{3,20}")
# E.164: "+", a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def is_e164(number: str) -> bool:
    """Whether `number` is a mobile number in E.164 form (`+15555550100`)."""
    return _E164.fullmatch(number) is not None


_CODING = {"GSM-7": "0", "UCS-2": "2"}


class KannelSender:
    """Submits one SMS per call to Kannel's sendsms; returns its coding and segment count."""

    def __init__(
        self,
        *,
        sendsms_url: str,
        username: str,
        password: str,
        sender: str = "",
        dlr_url: str | None = None,
        dlr_secret: bytes = b"",
        dlr_mask: int = DEFAULT_DLR_MASK,
        max_segments: int = 6,
        timeout_s: float = 5.0,
        max_connections: int = 16,
    ) -> None:
        if dlr_url is not None and not dlr_secret:
            raise ValueError("delivery reports need a secret to sign the delivery id")
        self._url = sendsms_url
        self._username = username
        self._password = password
        self._sender = sender
        self._dlr_url = dlr_url
        self._dlr_secret = dlr_secret
        self._dlr_mask = dlr_mask
        self._max_segments = max_segments
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, limits=limits)

    @classmethod
    def from_settings(
        cls, settings: CommonSettings, *, dlr_url: str | None = None, delivery_reports: bool = True
    ) -> KannelSender:
        """A sender using the configured gateway; reports go to `kannel_dlr_url`, else `dlr_url`
        (the service's own report endpoint), unless `delivery_reports` is off."""
        return cls(
            sendsms_url=settings.kannel_sendsms_url,
            username=settings.kannel_username,
            password=settings.kannel_password.get_secret_value(),
            sender=settings.kannel_sender,
            dlr_url=(settings.kannel_dlr_url or dlr_url) if delivery_reports else None,
            dlr_secret=settings.kannel_dlr_secret.get_secret_value().encode(),
            max_segments=settings.kannel_max_segments,
            timeout_s=settings.kannel_timeout_s,
            max_connections=max(settings.delivery_per_destination * 4, 8),
        )

    def unreported(self) -> KannelSender:
        """This sender, sharing its connections, asking for no delivery reports (texts that
        have no delivery record, e.g. replies to keywords). Close the original, not this."""
        twin = copy.copy(self)
        twin._dlr_url = None
        return twin

    def plan(self, *, to: str, text: str, delivery_id: str) -> tuple[dict[str, str], SmsCount]:
        """The sendsms query for one message and how it will be coded; DeliveryError if unusable."""
        if not _PHONE.fullmatch(to):
            raise DeliveryError("sms number invalid", reason="invalid_address")
        count = count_segments(text)
        # Both are bugs of the text, not of the gateway: another attempt cannot help.
        if count.segments == 0:
            raise DeliveryError("sms text empty", reason="internal", permanent=True)
        if count.segments > self._max_segments:
            raise DeliveryError(
                f"sms text too long ({count.segments} segments, at most {self._max_segments})",
                reason="internal",
                permanent=True,
            )
        params = {
            "username": self._username,
            "password": self._password,
            "to": to,
            "text": text,
            "charset": "UTF-8",
            "coding": _CODING[count.encoding],
        }
        if self._sender:
            params["from"] = self._sender
        if self._dlr_url is not None:
            params["dlr-mask"] = str(self._dlr_mask)
            params["dlr-url"] = self.dlr_callback(delivery_id)
        return params, count

    def dlr_callback(self, delivery_id: str) -> str:
        """The URL Kannel fetches for this delivery's reports (its escape codes unfilled)."""
        assert self._dlr_url is not None
        signed = urlencode(
            {"delivery_id": delivery_id, "sig": dlr_token(self._dlr_secret, delivery_id)}
        )
        separator = "&" if "?" in self._dlr_url else "?"
        return f"{self._dlr_url}{separator}{signed}&{DLR_QUERY}"

    async def send(self, *, to: str, text: str, delivery_id: str) -> SmsReceipt:
        """Submit one SMS; raises DeliveryError when Kannel is unreachable or refuses it."""
        params, count = self.plan(to=to, text=text, delivery_id=delivery_id)
        try:
            response = await self._client.get(self._url, params=params)
        except httpx.TimeoutException:
            raise DeliveryError("sms gateway timed out", reason="timeout") from None
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"sms gateway unreachable: {type(exc).__name__}", reason="unreachable"
            ) from None
        status = response.status_code
        if status >= 500:
            raise DeliveryError(f"sms gateway answered {status}", reason="http_5xx")
        if status in (408, 429):
            raise DeliveryError(f"sms gateway answered {status}", reason="rate_limited")
        if status >= 400 or status < 200:
            # Authorization failed, a missing or denied number: retrying cannot help.
            raise DeliveryError(f"sms gateway refused with {status}", reason="http_4xx")
        if response.text.startswith("3:"):
            # "3: Queued for later delivery": accepted, but no SMSC link is up right now.
            log.warning("sms.queued_by_gateway", delivery_id=delivery_id)
        log.debug(
            "sms.accepted",
            delivery_id=delivery_id,
            encoding=count.encoding,
            segments=count.segments,
        )
        return SmsReceipt(encoding=count.encoding, segments=count.segments)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
