"""One channel type, one sender per channel, and no falling through to another channel."""

from __future__ import annotations

from typing import get_args

import pytest

from schemas.deliveries import DeliveryChannel
from services.common.delivery import (
    EmailOutbound,
    MissingSender,
    SenderRegistry,
    WebhookOutbound,
)
from services.common.delivery.engine import DeliveryEngine
from tests.unit.common.delivery.fakes import (
    FakeEmail,
    FakePlan,
    FakeSms,
    FakeStore,
    FakeWebhook,
)


def test_every_channel_has_a_branch_in_the_registry() -> None:
    full = SenderRegistry(webhook=FakeWebhook(), email=FakeEmail(), sms=FakeSms())
    for channel in get_args(DeliveryChannel):
        assert full.has(channel), channel
    full.require(get_args(DeliveryChannel))


@pytest.mark.parametrize("channel", get_args(DeliveryChannel))
def test_a_channel_without_a_sender_fails_at_start_up(channel: DeliveryChannel) -> None:
    senders = {"webhook": FakeWebhook(), "email": FakeEmail(), "sms": FakeSms()}
    del senders[channel]
    registry = SenderRegistry(**senders)  # type: ignore[arg-type]
    with pytest.raises(MissingSender, match=channel):
        registry.require(get_args(DeliveryChannel))
    # The engine refuses to start for a plan that delivers on that channel.
    plan = FakePlan()
    plan.channels = (channel,)
    with pytest.raises(MissingSender):
        DeliveryEngine(
            store=FakeStore(),  # type: ignore[arg-type]
            senders=registry,
            plan=plan,
            service="t",
            destination_secret=b"k",
        )


async def test_messages_go_on_their_own_channel_only() -> None:
    webhook, email = FakeWebhook(), FakeEmail()
    registry = SenderRegistry(webhook=webhook, email=email)
    await registry.send(WebhookOutbound(url="http://x/hook", payload={}), delivery_id="d1")
    await registry.send(EmailOutbound(to="a@b.c", subject="s", text="t"), delivery_id="d2")
    assert webhook.attempts == [("http://x/hook", "d1")]
    assert [m["delivery_id"] for m in email.sent] == ["d2"]


async def test_no_sender_means_an_error_never_another_channel() -> None:
    email = FakeEmail()
    registry = SenderRegistry(email=email)
    with pytest.raises(MissingSender):
        await registry.send(WebhookOutbound(url="http://x", payload={}), delivery_id="d")
    assert email.sent == []
