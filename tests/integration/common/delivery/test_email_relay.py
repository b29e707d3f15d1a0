"""The e-mail sender against a real SMTP relay (aiosmtpd), with and without its extensions."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from deploy.local.common import free_port
from services.common.delivery import DeliveryError, EmailSender
from services.common.settings import CommonSettings


@dataclass
class Relay:
    """What the relay was told: each transaction's envelope and its raw content."""

    offer_8bitmime: bool
    port: int = 0
    received: list[tuple[list[str], str, bytes]] = field(default_factory=list)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.offer_8bitmime:
            return responses
        return [line for line in responses if "8BITMIME" not in line.upper()]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), envelope.mail_from, envelope.content))
        return "250 OK"


@contextmanager
def _serving(*, offer_8bitmime: bool, smtputf8: bool) -> Iterator[Relay]:
    handler = Relay(offer_8bitmime=offer_8bitmime, port=free_port())
    controller = Controller(
        handler, hostname="127.0.0.1", port=handler.port, enable_SMTPUTF8=smtputf8
    )
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@dataclass
class _Gathering(Relay):
    """Holds each message's DATA until `expected` sessions are in it at once (or a
    generous deadline passed): `most` says how many the sender carried at once."""

    expected: int = 0
    inside: int = 0
    most: int = 0
    all_in: asyncio.Event | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.all_in is None:  # the relay's own loop (a thread of the controller)
            self.all_in = asyncio.Event()
        self.inside += 1
        self.most = max(self.most, self.inside)
        if self.inside >= self.expected:
            self.all_in.set()
        # Fewer connections than expected: after the deadline (within the sender's SMTP
        # timeout, 60 s below) the ones inside go on alone. Generous: on a busy machine
        # sixteen sessions may take a while to open; with enough connections the last
        # one in lets everyone go at once.
        try:
            await asyncio.wait_for(self.all_in.wait(), 45.0)
        except TimeoutError:
            self.all_in.set()  # given up: the later ones do not wait again
        self.inside -= 1
        return await super().handle_DATA(server, session, envelope)


async def test_the_default_pool_carries_sixteen_e_mails_to_the_relay_at_once() -> None:
    # Every e-mail of a process shares this pool; the engine lets up to 32 go to one
    # address at once. Four connections held a burst of e-mails at 200/s back by seconds.
    handler = _Gathering(offer_8bitmime=True, port=free_port(), expected=16)
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    settings = CommonSettings(
        smtp_host="127.0.0.1", smtp_port=handler.port, smtp_timeout_s=60, database_url=None
    )
    sender = EmailSender.from_settings(settings)
    try:
        await asyncio.gather(
            *(
                sender.send(to=f"spoc{n}@example.org", subject="s", text="t", delivery_id=f"d{n}")
                for n in range(16)
            )
        )
    finally:
        await sender.close()
        controller.stop()
    assert handler.most == 16
    assert len(handler.received) == 16


@dataclass
class _Counting(Relay):
    """Counts the sessions that said EHLO: one per connection."""

    greetings: int = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.greetings += 1
        return await super().handle_EHLO(server, session, envelope, hostname, responses)


async def test_e_mails_sent_one_at_a_time_keep_to_one_connection() -> None:
    handler = _Counting(offer_8bitmime=True, port=free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    sender = EmailSender(host="127.0.0.1", port=handler.port, sender="aviso@example.org")
    try:
        for n in range(6):
            await sender.send(to=f"spoc{n}@example.org", subject="s", text="t", delivery_id=f"d{n}")
    finally:
        await sender.close()
        controller.stop()
    assert len(handler.received) == 6
    assert handler.greetings == 1


@pytest.fixture(params=[True, False], ids=["8bitmime", "7bit-only"])
def relay(request: pytest.FixtureRequest) -> Iterator[Relay]:
    with _serving(offer_8bitmime=request.param, smtputf8=False) as handler:
        yield handler


@pytest.fixture
def utf8_relay() -> Iterator[Relay]:
    with _serving(offer_8bitmime=True, smtputf8=True) as handler:
        yield handler


def _read(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_spanish_mail_arrives_whole_on_either_relay(relay: Relay) -> None:
    sender = EmailSender(host="127.0.0.1", port=relay.port, sender="Aviso <aviso@example.org>")
    try:
        for n in range(2):  # the second goes over the kept connection
            await sender.send(
                to=f"Oficial Núñez <spoc{n}@example.org>",
                subject="Aviso: operación cerca de\u2028la escuela",
                text="Área: Este\n.una línea con punto\nmañana\n",
                delivery_id=f"d-{n}",
                language="es",
            )
    finally:
        await sender.close()
    assert [(rcpt, mail_from) for rcpt, mail_from, _ in relay.received] == [
        (["spoc0@example.org"], "aviso@example.org"),
        (["spoc1@example.org"], "aviso@example.org"),
    ]
    for n, (_, _, raw) in enumerate(relay.received):
        assert raw.isascii() is not relay.offer_8bitmime
        message = _read(raw)
        assert message["Subject"] == "Aviso: operación cerca de la escuela"
        assert message["To"].addresses[0].display_name == "Oficial Núñez"
        assert message["Message-ID"] == f"<d-{n}@example.org>"
        body = message.get_body(preferencelist=("plain",))
        assert isinstance(body, EmailMessage)
        text = body.get_content().replace("\r\n", "\n")
        assert text == "Área: Este\n.una línea con punto\nmañana\n"


async def test_an_international_address_needs_a_relay_with_smtputf8(
    relay: Relay, utf8_relay: Relay
) -> None:
    for target, accepted in ((utf8_relay, True), (relay, False)):
        sender = EmailSender(host="127.0.0.1", port=target.port, sender="aviso@example.org")
        try:
            if accepted:
                await sender.send(to="núñez@policía.example", subject="s", text="t",
                                  delivery_id="d")  # fmt: skip
            else:
                with pytest.raises(DeliveryError) as refused:
                    await sender.send(to="núñez@policía.example", subject="s", text="t",
                                      delivery_id="d")  # fmt: skip
                assert refused.value.reason == "invalid_address"
        finally:
            await sender.close()
    assert [rcpt for rcpt, _, _ in utf8_relay.received] == [["núñez@policía.example"]]
    assert relay.received == []


def test_a_sender_setting_that_is_not_one_address_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="must be one address"):
        EmailSender(host="127.0.0.1", port=1, sender="aviso, other@example.org")
