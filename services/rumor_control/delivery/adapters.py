"""Channel adapters of rumor control: signed webhooks and e-mail to liaisons and the radio desk.

The publishing use cases decide what each recipient gets (`DeliveryRequested` on
`aviso.deliveries.v1`, recipients by id only); the delivery consumer calls `BulletinSender`
with the address looked up in department.yaml and a receipt link made for that recipient
and version. Retries, backoff and the DLQ come from the consumer.
"""

from __future__ import annotations

from typing import Any, Protocol

from schemas.base import is_drill
from schemas.deliveries import DeliveryRequested
from services.common.delivery import DeliveryError, EmailSender, WebhookSender
from services.common.settings import CommonSettings
from services.rumor_control.department import Recipient

__all__ = [
    "BulletinSender",
    "ChannelSender",
    "email_text",
    "webhook_payload",
]

_RECEIPT_LINE = {
    "en": "Please confirm that you received this bulletin:",
    "es": "Por favor, confirme que recibió este boletín:",
}
_DRILL_PREFIX = {"en": "DRILL — ", "es": "SIMULACRO (DRILL) — "}


def _marked(text: str, request: DeliveryRequested) -> str:
    """Drills start every message with DRILL, whatever a vetter did to the text."""
    if not is_drill(request.status):
        return text
    opening = text.lstrip()[:40].upper()
    if "DRILL" in opening or "SIMULACRO" in opening:
        return text
    return _DRILL_PREFIX[request.language] + text


def webhook_payload(request: DeliveryRequested, *, receipt_url: str) -> dict[str, Any]:
    """The JSON a liaison's or the radio desk's webhook receives."""
    return {
        "type": "aviso.bulletin",
        "delivery_id": str(request.delivery_id),
        "bulletin_id": str(request.aggregate_id),
        "version": request.aggregate_version,
        "purpose": request.purpose,
        "status": request.status,
        "drill": is_drill(request.status),
        "language": request.language,
        "headline": _marked(request.headline, request),
        "body": _marked(request.body, request),
        "receipt_url": receipt_url,
    }


def email_text(request: DeliveryRequested, *, receipt_url: str) -> str:
    """The plain-text e-mail: the message, then the receipt link."""
    line = _RECEIPT_LINE[request.language]
    return f"{_marked(request.body, request)}\n\n{line}\n{receipt_url}\n"


class ChannelSender(Protocol):
    """What the delivery use case needs (tests may record instead of sending)."""

    async def send(
        self, recipient: Recipient, request: DeliveryRequested, *, receipt_url: str
    ) -> None: ...

    async def close(self) -> None: ...


class BulletinSender:
    """Sends one delivery request by webhook or e-mail to a configured recipient."""

    def __init__(self, *, webhook: WebhookSender, email: EmailSender) -> None:
        self._webhook = webhook
        self._email = email

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> BulletinSender:
        """Senders using the configured webhook secrets and SMTP relay."""
        return cls(
            webhook=WebhookSender.from_settings(settings), email=EmailSender.from_settings(settings)
        )

    async def send(
        self, recipient: Recipient, request: DeliveryRequested, *, receipt_url: str
    ) -> None:
        """Deliver; raises DeliveryError (permanent when the receiver refused)."""
        if request.channel == "webhook":
            if not recipient.webhook_url:
                raise DeliveryError("no webhook configured for the recipient", permanent=True)
            await self._webhook.send(
                recipient.webhook_url,
                webhook_payload(request, receipt_url=receipt_url),
                delivery_id=str(request.delivery_id),
            )
            return
        if not recipient.email:
            raise DeliveryError("no e-mail configured for the recipient", permanent=True)
        await self._email.send(
            to=recipient.email,
            subject=_marked(request.headline, request),
            text=email_text(request, receipt_url=receipt_url),
            delivery_id=str(request.delivery_id),
            language=request.language,
        )

    async def close(self) -> None:
        """Close the webhook connection pool."""
        await self._webhook.close()
