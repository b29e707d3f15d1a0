"""Router's delivery plan and its outcome hooks, against the in-memory fakes.

The engine is not involved: each test hands the plan a delivery record as the engine
would (built from the order `notify` produced) and checks what the alert records.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.delivery import (
    Delivered,
    DeliveryError,
    DeliveryOrder,
    DeliveryRecord,
    EmailOutbound,
    Failure,
    MissingSender,
    ReasonClass,
    SenderRegistry,
    Settled,
    Skip,
    Transaction,
    WebhookOutbound,
)
from services.common.delivery.engine import DeliveryEngine
from services.router import acknowledgement, alerting
from services.router.app import RouterRuntime, default_senders
from services.router.config import RouterSettings
from services.router.delivery import RouterDeliveryPlan
from services.router.domain import AlertRecord, Transition, alert_id_for
from tests.unit.router.fakes import (
    BACKUP,
    NOW,
    SPOC,
    Clock,
    FakeAlerts,
    FakeDeps,
    FakeUnitOfWork,
    make_deps,
    received,
    with_directory,
)

# The module, not the function `services.router.delivery` exports under the same name.
compose_module = importlib.import_module("services.router.delivery.compose")


@dataclass
class FakeTx:
    """The engine's transaction as a hook sees it (the fake unit of work does the work)."""

    session: Any = None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(tmp_path: Path, clock: Clock) -> FakeDeps:
    deps = make_deps(tmp_path, clock=clock, router_delivery_give_up_s=600)
    with_directory(deps.store)
    return deps


def plan_for(deps: FakeDeps, uow: FakeUnitOfWork) -> RouterDeliveryPlan:
    return RouterDeliveryPlan(deps, views=lambda _session: uow)


def record_of(order: DeliveryOrder, *, attempts: int = 0) -> DeliveryRecord:
    """The record the engine would claim for `order`."""
    return DeliveryRecord(
        delivery_id=order.delivery_id,
        aggregate_id=order.aggregate_id,
        aggregate_version=order.aggregate_version,
        recipient_id=order.recipient_id,
        channel=order.channel,
        purpose=order.purpose,
        language=order.language,
        context=order.context,
        correlation_id=order.correlation_id,
        attempts=attempts,
        created_at=NOW,
        give_up_at=NOW + timedelta(minutes=15),
        destination_key=None,
        last_error_class=None,
    )


def failure(reason: ReasonClass, *, attempts: int, final: bool, at: datetime) -> Failure:
    return Failure(
        reason=reason,
        permanent=final,
        final=final,
        attempts=attempts,
        at=at,
        retry_at=None if final else at + timedelta(seconds=2),
        destination_key="k",
    )


async def open_one(deps: FakeDeps) -> uuid.UUID:
    notice = received()
    uow = FakeUnitOfWork(deps.store)
    await alerting.open_alert(uow, deps=deps, notice=notice)
    await uow.commit()
    return alert_id_for(notice.notice_id)


async def hook(deps: FakeDeps, call: str, *args: Any) -> list[Any]:
    """Run one hook in a fresh fake transaction and commit it; returns the logs."""
    uow = FakeUnitOfWork(deps.store)
    with structlog.testing.capture_logs() as logs:
        await getattr(plan_for(deps, uow), call)(cast(Transaction, FakeTx()), *args)
        await uow.commit()
    return logs


def orders_to(deps: FakeDeps, person: uuid.UUID) -> list[DeliveryOrder]:
    return [o for o in deps.store.orders if o.recipient_id == person]


async def test_resolve_addresses_each_channel_from_the_snapshot_with_the_ack_link(
    deps: FakeDeps,
) -> None:
    await open_one(deps)
    webhook, email = orders_to(deps, SPOC)
    uow = FakeUnitOfWork(deps.store)
    plan = plan_for(deps, uow)
    session = cast(AsyncSession, None)

    hook_message = await plan.resolve(session, record_of(webhook))
    mail = await plan.resolve(session, record_of(email))

    assert isinstance(hook_message, WebhookOutbound)
    assert hook_message.url == "https://hooks.test/spoc"
    assert hook_message.payload["delivery_id"] == str(webhook.delivery_id)
    assert str(hook_message.payload["ack_url"]).startswith("http://router.test/ack?token=")
    assert isinstance(mail, EmailOutbound)
    assert mail.to == "spoc@police.example"
    assert mail.subject == webhook.context["headline"]
    assert "http://router.test/ack?token=" in mail.text
    # The stored context never holds an address or the link (a credential).
    assert "police.example" not in str(webhook.context)
    assert "token=" not in str(webhook.context)


async def test_a_batch_signs_one_link_per_person_and_builds_only_what_each_channel_sends(
    deps: FakeDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    await open_one(deps)
    webhook, email = orders_to(deps, SPOC)
    signed: list[uuid.UUID] = []
    payloads: list[uuid.UUID] = []
    real_link, real_payload = compose_module.ack_link, compose_module._payload

    def counting_link(*args: Any, **kwargs: Any) -> tuple[str, datetime]:
        signed.append(kwargs["person_id"])
        return real_link(*args, **kwargs)

    def counting_payload(*args: Any, **kwargs: Any) -> dict[str, Any]:
        payloads.append(args[2].delivery_id)
        return real_payload(*args, **kwargs)

    monkeypatch.setattr(compose_module, "ack_link", counting_link)
    monkeypatch.setattr(compose_module, "_payload", counting_payload)
    plan = plan_for(deps, FakeUnitOfWork(deps.store))

    hook_message, mail = await plan.resolve_all(
        cast(AsyncSession, None), [record_of(webhook), record_of(email)]
    )

    assert signed == [SPOC], "the person's two channels carry one link, signed once"
    assert payloads == [webhook.delivery_id], "no webhook payload is built for an e-mail"
    assert isinstance(hook_message, WebhookOutbound)
    assert isinstance(mail, EmailOutbound)
    assert f"\n{hook_message.payload['ack_url']}\n" in mail.text
    assert hook_message.payload["text"] == mail.text.replace(
        str(email.delivery_id), str(webhook.delivery_id)
    )
    # Alone, each message signs its own link, as before.
    signed.clear()
    await plan.resolve(cast(AsyncSession, None), record_of(webhook))
    await plan.resolve(cast(AsyncSession, None), record_of(email))
    assert signed == [SPOC, SPOC]


async def test_without_a_console_the_notice_link_is_intakes_api(deps: FakeDeps) -> None:
    alert_id = await open_one(deps)
    webhook, email = orders_to(deps, SPOC)
    plan = plan_for(deps, FakeUnitOfWork(deps.store))
    hook_message = await plan.resolve(cast(AsyncSession, None), record_of(webhook))
    mail = await plan.resolve(cast(AsyncSession, None), record_of(email))

    assert isinstance(hook_message, WebhookOutbound)
    assert isinstance(mail, EmailOutbound)
    assert hook_message.payload["console_url"] is None
    assert str(hook_message.payload["notice_url"]).startswith("http://intake.test/v1/notices/")
    assert "Restricted detail (contact token required): http://intake.test/" in mail.text
    assert f"/alerts/{alert_id}" not in mail.text


async def test_with_a_console_every_notification_links_to_its_alert_page(
    tmp_path: Path, clock: Clock
) -> None:
    deps = make_deps(tmp_path, clock=clock, console_base_url="https://console.test/")
    with_directory(deps.store)
    alert_id = await open_one(deps)
    webhook, email = orders_to(deps, SPOC)
    plan = plan_for(deps, FakeUnitOfWork(deps.store))
    hook_message = await plan.resolve(cast(AsyncSession, None), record_of(webhook))
    mail = await plan.resolve(cast(AsyncSession, None), record_of(email))

    page = f"https://console.test/alerts/{alert_id}"
    assert isinstance(hook_message, WebhookOutbound)
    assert hook_message.payload["console_url"] == page
    assert hook_message.payload["notice_url"] == page
    # The one-click link still acknowledges without a sign-in.
    assert str(hook_message.payload["ack_url"]).startswith("http://router.test/ack?token=")
    assert isinstance(mail, EmailOutbound)
    assert f"Read it in the Aviso console (sign in; the restricted detail is there): {page}" in (
        mail.text
    )
    assert "intake.test" not in mail.text
    assert "http://router.test/ack?token=" in mail.text


async def test_resolve_skips_what_is_no_longer_wanted(deps: FakeDeps) -> None:
    alert_id = await open_one(deps)
    webhook, _ = orders_to(deps, SPOC)
    uow = FakeUnitOfWork(deps.store)
    await acknowledgement.acknowledge(
        uow, deps=deps, alert_id=alert_id, person_id=SPOC, notice_version=1, method="api"
    )
    await uow.commit()

    resolved = await plan_for(deps, FakeUnitOfWork(deps.store)).resolve(
        cast(AsyncSession, None), record_of(webhook)
    )

    assert isinstance(resolved, Skip)
    assert resolved.detail["state"] == "acknowledged"
    await hook(deps, "on_skipped", record_of(webhook), resolved)
    [skipped] = deps.store.entries(alert_id, "delivery_skipped")
    assert (skipped.delivery_id, skipped.detail["reason"]) == (webhook.delivery_id, "not_wanted")


async def test_a_recipient_without_an_address_on_the_channel_is_a_no_address_failure(
    deps: FakeDeps,
) -> None:
    await open_one(deps)
    webhook, _ = orders_to(deps, SPOC)
    # The backup has e-mail only: a webhook to them must fail, never fall through to e-mail.
    stray = record_of(webhook)
    stray = DeliveryRecord(**{**stray.__dict__, "recipient_id": BACKUP})
    with pytest.raises(DeliveryError) as raised:
        await plan_for(deps, FakeUnitOfWork(deps.store)).resolve(cast(AsyncSession, None), stray)
    assert raised.value.reason == "no_address"


async def test_give_up_after_is_the_router_setting(deps: FakeDeps) -> None:
    await open_one(deps)
    plan = plan_for(deps, FakeUnitOfWork(deps.store))
    assert plan.give_up_after(deps.store.orders[0]) == timedelta(seconds=600)


async def test_delivered_marks_the_alert_and_emits_alert_delivered(deps: FakeDeps) -> None:
    alert_id = await open_one(deps)
    webhook, _ = orders_to(deps, SPOC)
    result = Delivered(attempts=3, delivered_at=NOW, destination_key="k")

    logs = await hook(deps, "on_delivered", record_of(webhook, attempts=2), result)

    assert deps.store.alerts[alert_id].state == "delivered"
    [event] = deps.store.events("alert.delivered")
    assert (event.channel, event.attempts, event.step) == ("webhook", 3, 0)
    [entry] = deps.store.entries(alert_id, "delivered")
    assert entry.delivery_id == webhook.delivery_id
    assert [e["event"] for e in logs] == ["alert.delivered"]


class CountingAlerts(FakeAlerts):
    """The fake alert repository, noting every call the plan makes on it."""

    def __init__(self, inner: FakeAlerts) -> None:
        super().__init__(inner.store)
        self.calls: list[str] = []
        self.changes: list[Transition] = []  # the guarded row changes given to apply_all

    async def get(self, alert_id: uuid.UUID, *, lock: bool = False) -> AlertRecord | None:
        self.calls.append("get")
        return await super().get(alert_id, lock=lock)

    async def get_many(self, alert_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, AlertRecord]:
        self.calls.append("get_many")
        return await super().get_many(alert_ids)

    async def get_many_lean(self, alert_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, AlertRecord]:
        self.calls.append("get_many_lean")
        return await super().get_many_lean(alert_ids)

    async def apply(self, transition: Transition) -> bool:
        self.calls.append("apply")
        return await super().apply(transition)

    async def apply_all(self, transitions: Sequence[Transition]) -> list[bool]:
        self.calls.append("apply_all")  # one call, however the fake carries it out
        self.changes.extend(t for t in transitions if t.guard is not None)
        return [await FakeAlerts.apply(self, t) for t in transitions]


@pytest.mark.parametrize("n", [3, 25])
async def test_a_batch_of_delivered_outcomes_takes_a_constant_number_of_repository_calls(
    deps: FakeDeps, n: int
) -> None:
    alert_ids = [await open_one(deps) for _ in range(n)]
    webhooks = [o for o in orders_to(deps, SPOC) if o.channel == "webhook"]
    assert len(webhooks) == n
    result = Delivered(attempts=1, delivered_at=NOW, destination_key="k")
    uow = FakeUnitOfWork(deps.store)
    counting = CountingAlerts(uow.alerts)
    uow.alerts = counting
    outcomes = [Settled(record_of(order), result) for order in webhooks]

    with structlog.testing.capture_logs() as logs:
        await plan_for(deps, uow).on_outcomes(cast(Transaction, FakeTx()), outcomes)
        await uow.commit()

    # One read of every alert, then the state changes with every timeline entry and event.
    assert counting.calls == ["get_many_lean", "apply_all"]
    assert all(deps.store.alerts[a].state == "delivered" for a in alert_ids)
    assert len(deps.store.events("alert.delivered")) == n
    assert all(len(deps.store.entries(a, "delivered")) == 1 for a in alert_ids)
    assert [e["event"] for e in logs] == ["alert.delivered"] * n


async def test_a_notices_channels_delivered_together_mark_its_alert_once(deps: FakeDeps) -> None:
    alert_id = await open_one(deps)
    both = orders_to(deps, SPOC)
    assert {o.channel for o in both} == {"webhook", "email"}
    result = Delivered(attempts=1, delivered_at=NOW, destination_key="k")
    uow = FakeUnitOfWork(deps.store)
    counting = CountingAlerts(uow.alerts)
    uow.alerts = counting

    outcomes = [Settled(record_of(order), result) for order in both]
    await plan_for(deps, uow).on_outcomes(cast(Transaction, FakeTx()), outcomes)
    await uow.commit()

    assert counting.calls == ["get_many_lean", "apply_all"]
    assert [t.after.id for t in counting.changes] == [alert_id], "one change for both"
    assert deps.store.alerts[alert_id].state == "delivered"
    assert len(deps.store.entries(alert_id, "delivered")) == 2
    assert len(deps.store.events("alert.delivered")) == 2


async def test_each_failed_attempt_is_on_the_timeline_and_an_event(
    deps: FakeDeps, clock: Clock
) -> None:
    alert_id = await open_one(deps)
    webhook, _ = orders_to(deps, SPOC)

    logs = await hook(
        deps,
        "on_attempt_failed",
        record_of(webhook),
        failure("http_5xx", attempts=1, final=False, at=clock()),
    )

    [entry] = deps.store.entries(alert_id, "delivery_failed")
    assert entry.detail["reason"] == "http_5xx"
    assert (entry.detail["attempt"], entry.detail["final"]) == (1, False)
    assert "hooks.test" not in str(entry.detail)  # never an address
    [event] = deps.store.events("alert.delivery_failed")
    assert (event.reason, event.attempts, event.final, event.channel) == (
        "http_5xx",
        1,
        False,
        "webhook",
    )
    assert [e["event"] for e in logs] == ["alert.delivery_attempt_failed"]
    # The alert still waits out its step: one channel failing is not the step failing.
    assert deps.store.alerts[alert_id].next_fire_at == NOW + timedelta(seconds=60)


async def test_a_message_held_back_by_the_breaker_is_on_the_timeline(
    deps: FakeDeps, clock: Clock
) -> None:
    alert_id = await open_one(deps)
    webhook, _ = orders_to(deps, SPOC)
    await hook(
        deps,
        "on_attempt_failed",
        record_of(webhook),
        failure("circuit_open", attempts=0, final=False, at=clock()),
    )
    [entry] = deps.store.entries(alert_id, "delivery_failed")
    assert (entry.detail["reason"], entry.detail["attempt"]) == ("circuit_open", 0)
    [event] = deps.store.events("alert.delivery_failed")
    assert (event.reason, event.attempts) == ("circuit_open", 1)  # the contract counts from 1


async def test_one_channel_failing_for_good_does_not_escalate(deps: FakeDeps, clock: Clock) -> None:
    alert_id = await open_one(deps)
    webhook, _ = orders_to(deps, SPOC)
    deps.store.delivery_states[webhook.delivery_id] = "failed"

    logs = await hook(
        deps,
        "on_failed",
        record_of(webhook),
        failure("http_4xx", attempts=1, final=True, at=clock()),
    )

    [event] = deps.store.events("alert.delivery_failed")
    assert event.final is True
    assert deps.store.alerts[alert_id].next_fire_at == NOW + timedelta(seconds=60)
    assert [e["event"] for e in logs] == ["alert.delivery_failed"]


async def test_every_channel_of_the_step_failing_escalates_at_once(
    deps: FakeDeps, clock: Clock
) -> None:
    alert_id = await open_one(deps)
    webhook, email = orders_to(deps, SPOC)
    woken: list[bool] = []
    deps = FakeDeps(**{**deps.__dict__, "wake_escalation": lambda: woken.append(True)})
    clock.advance(5)
    deps.store.delivery_states[webhook.delivery_id] = "failed"
    await hook(
        deps,
        "on_failed",
        record_of(webhook),
        failure("expired", attempts=6, final=True, at=clock()),
    )
    assert not woken
    deps.store.delivery_states[email.delivery_id] = "failed"

    logs = await hook(
        deps, "on_failed", record_of(email), failure("rejected", attempts=1, final=True, at=clock())
    )

    alert = deps.store.alerts[alert_id]
    assert alert.next_fire_at == clock()  # due now, not after the 60 s wait
    assert alert.state == "triggered"  # the escalation worker fires it, as any due timer
    last = deps.store.entries(alert_id, "delivery_failed")[-1]
    assert last.detail["step_unreachable"] is True
    assert woken == [True]
    assert "alert.step_unreachable" in [e["event"] for e in logs]


async def test_a_failure_of_an_earlier_step_does_not_hasten_the_current_one(
    deps: FakeDeps, clock: Clock
) -> None:
    alert_id = await open_one(deps)
    webhook, email = orders_to(deps, SPOC)
    for order in (webhook, email):
        deps.store.delivery_states[order.delivery_id] = "failed"
    # Step 0 escalated meanwhile (its wait ran out): the alert now waits on the backup.
    alert = deps.store.alerts[alert_id]
    moved = alert.next_fire_at + timedelta(seconds=60)  # type: ignore[operator]
    deps.store.alerts[alert_id] = type(alert)(
        **{**alert.__dict__, "step": 1, "state": "escalated", "next_fire_at": moved}
    )

    await hook(
        deps, "on_failed", record_of(email), failure("rejected", attempts=1, final=True, at=clock())
    )

    assert deps.store.alerts[alert_id].next_fire_at == moved


def test_a_channel_without_a_sender_fails_at_start_up(deps: FakeDeps) -> None:
    plan = plan_for(deps, FakeUnitOfWork(deps.store))
    with pytest.raises(MissingSender, match="email"):
        DeliveryEngine(
            store=cast(Any, None),
            senders=SenderRegistry(webhook=cast(Any, object())),
            plan=plan,
            service="router",
            destination_secret=b"k",
        )


def test_router_leaves_the_delivered_and_skipped_lines_to_its_hooks(
    make_settings: Callable[..., Any],
) -> None:
    settings = make_settings(RouterSettings, link_secret="test-link-secret")
    runtime = RouterRuntime(settings=settings, senders=default_senders(settings))
    assert runtime.delivery._config.outcome_lines is False


async def test_a_channel_settled_after_its_alert_was_marked_changes_no_row(
    deps: FakeDeps,
) -> None:
    """The e-mail settled a round after the webhook: its alert is delivered already, so
    the outcome is a note only (entry and event), with no guarded change that could not
    pass. On main it was a change setting only `updated_at`, a statement of its own
    beside the batch's real changes."""
    alert_id = await open_one(deps)
    webhook, email = sorted(orders_to(deps, SPOC), key=lambda o: o.channel != "webhook")
    result = Delivered(attempts=1, delivered_at=NOW, destination_key="k")
    first = FakeUnitOfWork(deps.store)
    await plan_for(deps, first).on_outcomes(
        cast(Transaction, FakeTx()), [Settled(record_of(webhook), result)]
    )
    await first.commit()
    assert deps.store.alerts[alert_id].state == "delivered"

    uow = FakeUnitOfWork(deps.store)
    counting = CountingAlerts(uow.alerts)
    uow.alerts = counting
    await plan_for(deps, uow).on_outcomes(
        cast(Transaction, FakeTx()), [Settled(record_of(email), result)]
    )
    await uow.commit()

    assert counting.calls == ["get_many_lean", "apply_all"]
    assert counting.changes == [], "no guarded change for an alert delivered already"
    assert len(deps.store.entries(alert_id, "delivered")) == 2
    assert len(deps.store.events("alert.delivered")) == 2
