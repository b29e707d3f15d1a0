"""The network side of delivery: signed webhooks over pooled HTTP, e-mail over pooled SMTP.

A sender makes one attempt and either returns or raises `DeliveryError` with a reason
class (see `errors.py`); retries, backoff and circuit breaking belong to the engine.
Every delivery carries its delivery id (`Aviso-Delivery-Id` header, e-mail `Message-ID`)
so a receiver can drop the duplicate that at-least-once delivery allows after a crash:
the id stays the same on every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import aiosmtplib
from aiosmtplib.typing import SMTPStatus

from services.common.delivery.errors import DeliveryError
from services.common.delivery.headers import safe_header
from services.common.delivery.mail import DELIVERY_ID_HEADER, Mail, compose_mail, parse_address
from services.common.settings import CommonSettings
from services.common.signing import SIGNATURE_HEADER, signature_header

__all__ = [
    "DELIVERY_ID_HEADER",
    "DeliveryError",
    "EmailSender",
    "WebhookSender",
]

USER_AGENT = "Aviso-Webhook/1"
_KEEPALIVE_S = 4.0


class WebhookSender:
    """POSTs JSON to a webhook with an HMAC signature (the scheme intake verifies).

    One aiohttp session with a keep-alive pool as large as the engine's concurrency:
    httpx's pool costs several times more CPU per request and starved the event loop
    (database connections timed out) long before 1,000 deliveries/s. The session opens
    on the first send, inside the running loop, so a sender can be built in sync code
    (a composition root).
    """

    def __init__(
        self, *, secrets: Sequence[bytes], timeout_s: float = 5.0, max_connections: int = 128
    ) -> None:
        if not secrets:
            raise ValueError("a webhook sender needs at least one signing secret")
        self._secrets = list(secrets)
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> WebhookSender:
        """A sender signing with the configured secrets."""
        return cls(
            secrets=[s.get_secret_value().encode() for s in settings.webhook_secrets],
            timeout_s=settings.webhook_timeout_s,
            max_connections=max(settings.delivery_max_in_flight, 8),
        )

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # The engine bounds concurrency itself; the pool only has to have a kept
            # connection ready for each delivery in flight.
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=0,
                # Let go of an idle connection before common servers do (Node: 5 s), so a
                # POST rarely meets a connection the receiver is closing at that moment.
                keepalive_timeout=_KEEPALIVE_S,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # One bound on the whole attempt (connect, send, answer), as the setting says.
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                headers={"User-Agent": USER_AGENT},
                # A receiver's cookies must not travel to the next delivery.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Webhooks go straight to the receiver: no proxy or netrc from the environment.
                trust_env=False,
                auto_decompress=False,
            )
        return self._session

    async def send(self, url: str, payload: Mapping[str, Any], *, delivery_id: str) -> int:
        """Deliver `payload`; returns the HTTP status, raises DeliveryError on failure."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            DELIVERY_ID_HEADER: delivery_id,
            SIGNATURE_HEADER: signature_header(self._secrets, body, timestamp=int(time.time())),
        }
        session = self._open_session()
        try:
            # The answer's body is never read: only the status matters. A short body that
            # arrived with the status leaves the connection reusable; anything longer
            # makes aiohttp close it instead of downloading it.
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
        except TimeoutError:  # aiohttp's own timeouts subclass it too
            raise DeliveryError("webhook timed out", reason="timeout") from None
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError):
            raise DeliveryError("webhook address invalid", reason="invalid_address") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(
                f"webhook unreachable: {type(exc).__name__}", reason="unreachable"
            ) from None
        return _checked(status)

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _checked(status: int) -> int:
    """`status` if it means delivered, else the DeliveryError its class calls for."""
    if status >= 500:
        raise DeliveryError(f"webhook answered {status}", reason="http_5xx")
    if status in (408, 429):
        raise DeliveryError(f"webhook answered {status}", reason="rate_limited")
    if status >= 400:
        raise DeliveryError(f"webhook refused with {status}", reason="http_4xx")
    if status >= 300:
        # Redirects are never followed (the signed body must not go where the directory
        # does not say), so nothing reached the receiver: the configured URL is wrong.
        raise DeliveryError(f"webhook redirected with {status}", reason="invalid_address")
    return status


class EmailSender:
    """Sends plain-text e-mail through an SMTP relay over a small pool of kept connections.

    A connection is reused for the next message; one that fails is closed and the next
    user opens a fresh one. A message that fails on a reused connection which the relay
    had meanwhile dropped is tried once more on a new connection (same Message-ID).

    One pool carries every e-mail of the process, whatever the recipient, while the
    engine's limits are per recipient: a send waiting here for a connection holds its
    engine slot. With 4 connections, one address's e-mails at 200/s waited up to seconds
    here while the engine counted 32 under way and put every further one back.
    """

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
        pool_size: int = 16,
    ) -> None:
        self._host = host
        self._port = port
        try:
            self._from = parse_address(safe_header(sender))
        except DeliveryError:
            raise ValueError("the e-mail sender (AVISO_SMTP_SENDER) must be one address") from None
        self._starttls = starttls
        self._username = username
        self._password = password
        self._timeout_s = timeout_s
        # Slots, not connections: None means "open one when needed". Last in, first out:
        # a send takes the connection used last, so only as many are opened as sends
        # overlap (first in, first out went round every slot and opened them all).
        self._pool: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.LifoQueue()
        for _ in range(max(pool_size, 1)):
            self._pool.put_nowait(None)

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
            pool_size=settings.smtp_pool_size,
        )

    def build(
        self, *, to: str, subject: str, text: str, delivery_id: str, language: str = "en"
    ) -> Mail:
        """The message as it will be sent (Message-ID derived from the delivery id).

        Subject and every other header are made safe first (see `headers.py`): no text
        can make the message unbuildable. A recipient that is not exactly one address
        raises DeliveryError("invalid_address").
        """
        return compose_mail(
            sender=self._from,
            to=to,
            subject=subject,
            text=text,
            delivery_id=delivery_id,
            language=language,
        )

    async def send(
        self, *, to: str, subject: str, text: str, delivery_id: str, language: str = "en"
    ) -> None:
        """Send one e-mail; raises DeliveryError when the relay is unreachable or refuses."""
        mail = self.build(
            to=to, subject=subject, text=text, delivery_id=delivery_id, language=language
        )
        slot = await self._pool.get()
        try:
            slot = await self._send_on(slot, mail)
        finally:
            self._pool.put_nowait(slot)

    async def _send_on(self, smtp: aiosmtplib.SMTP | None, mail: Mail) -> aiosmtplib.SMTP | None:
        """Send on `smtp` (or a new connection); returns what the slot holds afterwards."""
        reused = smtp is not None and smtp.is_connected
        try:
            if smtp is None or not smtp.is_connected:
                smtp = await self._connect()
            try:
                await _transmit(smtp, mail)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                if not reused:
                    raise
                # The relay closed an idle kept connection: that says nothing about this
                # message, so one more try on a fresh connection.
                await _close_quietly(smtp)
                smtp = await self._connect()
                await _transmit(smtp, mail)
            return smtp
        except DeliveryError:
            await _close_quietly(smtp)
            raise
        except aiosmtplib.SMTPRecipientsRefused:
            await _close_quietly(smtp)
            raise DeliveryError("recipient refused by the relay", reason="rejected") from None
        except aiosmtplib.SMTPResponseException as exc:
            await _close_quietly(smtp)
            if 500 <= exc.code < 600:
                raise DeliveryError(f"relay refused ({exc.code})", reason="rejected") from None
            raise DeliveryError(f"relay deferred ({exc.code})", reason="deferred") from None
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            await _close_quietly(smtp)
            raise DeliveryError("relay timed out", reason="timeout") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            await _close_quietly(smtp)
            raise DeliveryError(
                f"smtp failed: {type(exc).__name__}", reason="unreachable"
            ) from None

    async def _connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            timeout=self._timeout_s,
            # Explicit: never upgrade on the server's say-so alone, never skip when asked.
            start_tls=self._starttls,
        )
        await smtp.connect()
        if self._username and self._password:
            await smtp.login(self._username, self._password)
        return smtp

    async def close(self) -> None:
        """Say QUIT on every kept connection."""
        kept: list[aiosmtplib.SMTP | None] = []
        while not self._pool.empty():
            kept.append(self._pool.get_nowait())
        for smtp in kept:
            if smtp is not None:
                with contextlib.suppress(Exception):
                    await smtp.quit()
            self._pool.put_nowait(None)


async def _transmit(smtp: aiosmtplib.SMTP, mail: Mail) -> None:
    """One SMTP transaction for `mail`, its body 8-bit where the relay offers 8BITMIME.

    MAIL, RCPT and DATA as aiosmtplib's `sendmail` sends them for one recipient, with the
    same answers accepted, but from the envelope `compose_mail` already parsed and checked
    (`parse_address`): `sendmail` parsed both addresses twice more and measured the body
    twice, ~a quarter of the e-mail's CPU in the sending process (docs/performance.md,
    "Router's alert list read in its order from an index; an e-mail sent from its parsed
    envelope (twenty-first round)"). No RSET after a refusal: the caller closes the
    connection instead.
    """
    if smtp.is_ehlo_or_helo_needed:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            await smtp.helo()
    eight_bit = smtp.supports_extension("8bitmime")
    message = mail.as_bytes(eight_bit=eight_bit)
    options = [b"BODY=8BITMIME"] if eight_bit else []
    encoding = "ascii"
    if mail.needs_smtputf8:
        if not smtp.supports_extension("smtputf8"):
            raise DeliveryError("relay cannot carry this address", reason="invalid_address")
        options.append(b"SMTPUTF8")
        encoding = "utf-8"
    if smtp.supports_extension("size"):
        # RFC 1870: the octets DATA carries, CRLF included (`as_bytes` ends every line so).
        options.insert(0, b"SIZE=%d" % len(message))
    sender = f"FROM:<{mail.sender}>".encode(encoding)
    answer = await smtp.execute_command(b"MAIL", sender, *options)
    if answer.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(answer.code, answer.message, mail.sender)
    answer = await smtp.execute_command(b"RCPT", f"TO:<{mail.recipient}>".encode(encoding))
    if answer.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
        refused = aiosmtplib.SMTPRecipientRefused(answer.code, answer.message, mail.recipient)
        raise aiosmtplib.SMTPRecipientsRefused([refused])
    await smtp.data(message)


async def _close_quietly(smtp: aiosmtplib.SMTP | None) -> None:
    if smtp is None:
        return
    with contextlib.suppress(Exception):
        smtp.close()
