"""Outbound channels shared by the channel adapters: signed webhooks and e-mail over SMTP.

Adapters (router's for alerts, rumor_control's for bulletins) consume delivery requests
and call these senders; retries, backoff and the DLQ come from the consumer. Every
delivery carries its delivery id (`Aviso-Delivery-Id` header, e-mail `Message-ID`) so a
receiver can drop the duplicate that at-least-once delivery allows after a crash.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import time
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import httpx

from services.common.settings import CommonSettings
from services.common.signing import SIGNATURE_HEADER, signature_header

__all__ = [
    "DELIVERY_ID_HEADER",
    "DeliveryError",
    "EmailSender",
    "WebhookSender",
]

DELIVERY_ID_HEADER = "Aviso-Delivery-Id"


class DeliveryError(Exception):
    """A delivery attempt failed; `permanent` means retrying cannot help (e.g. HTTP 400)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class WebhookSender:
    """POSTs JSON to a webhook with an HMAC signature (the scheme intake verifies)."""

    def __init__(self, *, secrets: Sequence[bytes], timeout_s: float = 5.0) -> None:
        if not secrets:
            raise ValueError("a webhook sender needs at least one signing secret")
        self._secrets = list(secrets)
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> WebhookSender:
        """A sender signing with the configured secrets."""
        return cls(
            secrets=[s.get_secret_value().encode() for s in settings.webhook_secrets],
            timeout_s=settings.webhook_timeout_s,
        )

    async def send(self, url: str, payload: Mapping[str, Any], *, delivery_id: str) -> int:
        """Deliver `payload`; returns the HTTP status, raises DeliveryError on failure."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            DELIVERY_ID_HEADER: delivery_id,
            SIGNATURE_HEADER: signature_header(self._secrets, body, timestamp=int(time.time())),
            "User-Agent": "Aviso-Webhook/1",
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook unreachable: {type(exc).__name__}") from None
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise DeliveryError(f"webhook answered {response.status_code}")
        if response.status_code >= 400:
            raise DeliveryError(f"webhook refused with {response.status_code}", permanent=True)
        return response.status_code

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class EmailSender:
    """Sends plain-text e-mail through an SMTP relay (blocking smtplib, run in a thread)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._starttls = starttls
        self._username = username
        self._password = password
        self._timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> EmailSender:
        """A sender using the configured relay."""
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout_s=settings.smtp_timeout_s,
        )

    def build(
        self, *, to: str, subject: str, text: str, delivery_id: str, language: str = "en"
    ) -> EmailMessage:
        """The message as it will be sent (Message-ID derived from the delivery id)."""
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        domain = self._sender.rsplit("@", 1)[-1] or "aviso.local"
        message["Message-ID"] = f"<{delivery_id}@{domain}>"
        message[DELIVERY_ID_HEADER] = delivery_id
        message.set_content(text)
        # After set_content, which owns the Content-* headers.
        message["Content-Language"] = language
        return message

    async def send(
        self, *, to: str, subject: str, text: str, delivery_id: str, language: str = "en"
    ) -> None:
        """Send one e-mail; raises DeliveryError when the relay is unreachable or refuses."""
        message = self.build(
            to=to, subject=subject, text=text, delivery_id=delivery_id, language=language
        )
        try:
            await asyncio.to_thread(self._send_blocking, message)
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("recipient refused by the relay", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"smtp failed: {type(exc).__name__}") from None

    def _send_blocking(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout_s) as smtp:
            if self._starttls:
                smtp.starttls()
            if self._username and self._password:
                smtp.login(self._username, self._password)
            smtp.send_message(message)
