"""The e-mail sender reads each of the relay's answers (a real aiosmtpd relay): a refusal
at MAIL, RCPT or DATA becomes the DeliveryError its code calls for, the next e-mail goes
out on a fresh connection, and MAIL announces the message's size as DATA carries it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from deploy.local.common import free_port
from services.common.delivery import DeliveryError, EmailSender


@dataclass
class AnsweringRelay:
    """A relay answering `answers[command]` once to the next such command (else as usual),
    recording each MAIL's parameters and each message it takes."""

    port: int
    answers: dict[str, str] = field(default_factory=dict)
    mail_options: list[list[str]] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.mail_options.append(list(options))
        if answer := self.answers.pop("MAIL", None):
            return answer
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if answer := self.answers.pop("RCPT", None):
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if answer := self.answers.pop("DATA", None):
            return answer
        self.received.append(envelope.content)
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[AnsweringRelay]:
    handler = AnsweringRelay(port=free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


async def _send(sender: EmailSender, n: int) -> None:
    await sender.send(
        to=f"spoc{n}@example.org", subject="Alert", text=f"Body {n}\n.dot\n", delivery_id=f"d-{n}"
    )


@pytest.mark.parametrize(
    ("command", "answer", "reason"),
    [
        ("MAIL", "451 4.3.0 try again later", "deferred"),
        ("MAIL", "553 5.7.1 sender not allowed", "rejected"),
        ("RCPT", "550 5.1.1 no such user", "rejected"),
        ("DATA", "452 4.3.1 insufficient storage", "deferred"),
        ("DATA", "554 5.6.0 message refused", "rejected"),
    ],
)
async def test_a_refusal_is_told_by_its_code_and_the_next_mail_goes_out(
    relay: AnsweringRelay, command: str, answer: str, reason: str
) -> None:
    relay.answers[command] = answer
    sender = EmailSender(host="127.0.0.1", port=relay.port, sender="aviso@example.org")
    try:
        with pytest.raises(DeliveryError) as refused:
            await _send(sender, 0)
        assert refused.value.reason == reason
        await _send(sender, 1)
    finally:
        await sender.close()
    assert len(relay.received) == 1
    assert b"Body 1\r\n.dot\r\n" in relay.received[0]


async def test_mail_announces_the_size_data_carries(relay: AnsweringRelay) -> None:
    sender = EmailSender(host="127.0.0.1", port=relay.port, sender="aviso@example.org")
    try:
        for n in range(2):  # the second over the kept connection
            await _send(sender, n)
    finally:
        await sender.close()
    sizes = [
        [option.upper() for option in options if option.upper().startswith("SIZE=")]
        for options in relay.mail_options
    ]
    assert sizes == [[f"SIZE={len(content)}"] for content in relay.received]
