"""One channel type, one message type per channel, one sender per channel.

Adding a channel means: add it to `schemas.deliveries.DeliveryChannel`, add its message
type here and to `Outbound`, give `SenderRegistry` a sender for it. The type checker
points at every `match` that forgot it (`assert_never`), and `SenderRegistry.require`
fails at start-up when a service would deliver on a channel with no sender: a message is
never quietly sent on another channel instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, assert_never

from schemas.deliveries import DeliveryChannel

__all__ = [
    "EmailOutbound",
    "EmailTransport",
    "MissingSender",
    "Outbound",
    "SenderChannel",
    "SenderRegistry",
    "Skip",
    "SmsOutbound",
    "SmsReceipt",
    "SmsTransport",
    "WebhookOutbound",
    "WebhookTransport",
]


@dataclass(frozen=True)
class WebhookOutbound:
    """A JSON payload for one webhook URL."""

    channel: ClassVar[Literal["webhook"]] = "webhook"
    url: str
    payload: Mapping[str, Any]

    @property
    def address(self) -> str:
        return self.url


@dataclass(frozen=True)
class EmailOutbound:
    """A plain-text e-mail for one address (the subject is made safe when sent)."""

    channel: ClassVar[Literal["email"]] = "email"
    to: str
    subject: str
    text: str
    language: str = "en"

    @property
    def address(self) -> str:
        return self.to


@dataclass(frozen=True)
class SmsOutbound:
    """A text message for one phone number (E.164); the gateway picks GSM-7 or UCS-2."""

    channel: ClassVar[Literal["sms"]] = "sms"
    to: str
    text: str

    @property
    def address(self) -> str:
        return self.to


@dataclass(frozen=True)
class SmsReceipt:
    """What the gateway accepted: how the text was coded and in how many segments."""

    encoding: Literal["GSM-7", "UCS-2"]
    segments: int


# What a plan resolves a delivery to: exactly one message type per channel.
Outbound = WebhookOutbound | EmailOutbound | SmsOutbound

# Every channel a sender exists for: the contract's channels (kept as a name of its own
# for the code that imported it).
SenderChannel = DeliveryChannel


@dataclass(frozen=True)
class Skip:
    """Nothing to send any more (e.g. the alert was acknowledged); `reason` is a short code."""

    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict)


class WebhookTransport(Protocol):
    """Sends one webhook (WebhookSender, or a fake in tests)."""

    async def send(self, url: str, payload: Mapping[str, Any], *, delivery_id: str) -> int: ...

    async def close(self) -> None: ...


class EmailTransport(Protocol):
    """Sends one e-mail (EmailSender, or a fake in tests)."""

    async def send(
        self, *, to: str, subject: str, text: str, delivery_id: str, language: str = "en"
    ) -> None: ...

    async def close(self) -> None: ...


class SmsTransport(Protocol):
    """Sends one SMS (KannelSender, or a fake in tests)."""

    async def send(self, *, to: str, text: str, delivery_id: str) -> SmsReceipt: ...

    async def close(self) -> None: ...


class MissingSender(RuntimeError):
    """A service would deliver on a channel that has no sender configured."""


class SenderRegistry:
    """The sender of each channel; `send` dispatches on the message type, exhaustively."""

    def __init__(
        self,
        *,
        webhook: WebhookTransport | None = None,
        email: EmailTransport | None = None,
        sms: SmsTransport | None = None,
    ) -> None:
        self._webhook = webhook
        self._email = email
        self._sms = sms

    @property
    def sms(self) -> SmsTransport | None:
        """The SMS sender, for replies a service texts back outside any delivery."""
        return self._sms

    def has(self, channel: SenderChannel) -> bool:
        """Whether `channel` has a sender."""
        match channel:
            case "webhook":
                return self._webhook is not None
            case "email":
                return self._email is not None
            case "sms":
                return self._sms is not None
            case _:
                assert_never(channel)

    def require(self, channels: Iterable[SenderChannel]) -> None:
        """Fail (at start-up) unless every channel in `channels` has a sender."""
        missing = sorted({channel for channel in channels if not self.has(channel)})
        if missing:
            raise MissingSender(f"no sender configured for channel(s): {', '.join(missing)}")

    async def send(self, outbound: Outbound, *, delivery_id: str) -> SmsReceipt | None:
        """One attempt on the message's own channel; raises DeliveryError on failure.

        Returns the SMS gateway's receipt (coding and segment count) for an SMS, else None.
        """
        if not isinstance(outbound, WebhookOutbound):
            # aiohttp writes a request's body from a task of its own (eagerly only on Python
            # 3.12+), queued behind whatever is ready when the webhook's attempt spawns it:
            # an e-mail's composition and SMTP commands, an SMS request, started in the same
            # turn (the engine starts webhooks first), ran before it. One turn here puts
            # them behind the webhook's bytes; an e-mail or SMS does not miss it.
            await asyncio.sleep(0)
        match outbound:
            case WebhookOutbound():
                if self._webhook is None:
                    raise MissingSender("no sender configured for channel: webhook")
                await self._webhook.send(outbound.url, outbound.payload, delivery_id=delivery_id)
            case EmailOutbound():
                if self._email is None:
                    raise MissingSender("no sender configured for channel: email")
                await self._email.send(
                    to=outbound.to,
                    subject=outbound.subject,
                    text=outbound.text,
                    delivery_id=delivery_id,
                    language=outbound.language,
                )
            case SmsOutbound():
                if self._sms is None:
                    raise MissingSender("no sender configured for channel: sms")
                return await self._sms.send(
                    to=outbound.to, text=outbound.text, delivery_id=delivery_id
                )
            case _:
                assert_never(outbound)
        return None

    async def close(self) -> None:
        """Close every sender's connections."""
        for sender in (self._webhook, self._email, self._sms):
            if sender is not None:
                await sender.close()
