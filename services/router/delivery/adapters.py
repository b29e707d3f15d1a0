"""Router's channel adapters: a signed webhook and e-mail over SMTP.

The adapter use case (`delivery.deliver`) decides whether and what to send; this module
only talks to the outside world. Retries, backoff and the DLQ come from the Kafka
consumer: a transient failure raises `DeliveryError` and the request is tried again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from services.common.delivery import DeliveryError, EmailSender, WebhookSender
from services.common.settings import CommonSettings
from services.router.domain import ChannelKind

__all__ = ["ChannelAdapters", "Channels", "DeliveryError"]


class Channels(Protocol):
    """What the delivery use case needs from the outside world."""

    async def send(
        self,
        *,
        channel: ChannelKind,
        address: str,
        subject: str,
        text: str,
        payload: Mapping[str, Any],
        delivery_id: uuid.UUID,
        language: str,
    ) -> None: ...

    def count_attempt(self, delivery_id: uuid.UUID) -> int: ...

    def forget(self, delivery_id: uuid.UUID) -> None: ...


class ChannelAdapters:
    """The real channels: HMAC-signed webhooks and SMTP e-mail."""

    def __init__(self, *, webhook: WebhookSender, email: EmailSender) -> None:
        self._webhook = webhook
        self._email = email
        # Tries per delivery id in this process, for `alert.delivered.attempts`. The
        # consumer retries within one process, so a local count is the true count
        # unless the process died between tries (then it restarts from 1).
        self._attempts: dict[uuid.UUID, int] = {}

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> ChannelAdapters:
        """Senders configured from the common webhook and SMTP settings."""
        return cls(
            webhook=WebhookSender.from_settings(settings), email=EmailSender.from_settings(settings)
        )

    async def send(
        self,
        *,
        channel: ChannelKind,
        address: str,
        subject: str,
        text: str,
        payload: Mapping[str, Any],
        delivery_id: uuid.UUID,
        language: str,
    ) -> None:
        """Deliver on one channel; raises DeliveryError (permanent or not) on failure."""
        if channel == "webhook":
            await self._webhook.send(address, payload, delivery_id=str(delivery_id))
        else:
            await self._email.send(
                to=address,
                subject=subject,
                text=text,
                delivery_id=str(delivery_id),
                language=language,
            )

    def count_attempt(self, delivery_id: uuid.UUID) -> int:
        """Count one more try of `delivery_id`; returns the tries so far, this one included."""
        self._attempts[delivery_id] = self._attempts.get(delivery_id, 0) + 1
        if len(self._attempts) > 10_000:  # deliveries that died in the DLQ are never popped
            self._attempts.pop(next(iter(self._attempts)))
        return self._attempts[delivery_id]

    def forget(self, delivery_id: uuid.UUID) -> None:
        """The delivery is settled; stop counting it."""
        self._attempts.pop(delivery_id, None)

    async def close(self) -> None:
        """Close the webhook connection pool."""
        await self._webhook.close()
