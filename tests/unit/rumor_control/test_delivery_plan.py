"""rumor_control's delivery plan with fakes: what a record becomes, what an outcome writes.

No database, no network: the plan reads bulletins through the in-memory unit of work and
its hooks write through the same typed transitions the service applies.
"""

from __future__ import annotations

import email
import email.policy
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from schemas.bulletins import BulletinDeliveryFailed
from services.common.delivery import (
    Delivered,
    DeliveryError,
    DeliveryOrder,
    DeliveryRecord,
    EmailOutbound,
    EmailSender,
    Failure,
    MissingSender,
    SenderRegistry,
    Settled,
    Skip,
    WebhookOutbound,
)
from services.rumor_control import publishing, vetting
from services.rumor_control.app import create_app
from services.rumor_control.config import PACKAGE_DIR, RumorControlSettings
from services.rumor_control.delivery.plan import BulletinDeliveryPlan
from services.rumor_control.deps import RumorControlDeps
from tests.unit.rumor_control.conftest import APPROVER, standby_draft
from tests.unit.rumor_control.fakes import FakeClock, FakeUnitOfWork, Store


class _Tx:
    """The engine's transaction as a hook sees it (only the session is used)."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.session: Any = uow

    def after_commit(self, effect: Any) -> None:
        raise AssertionError("the plan registers its effects on its unit of work")

    async def commit(self) -> None:
        raise AssertionError("hooks never commit")


class _Session:
    """Stands for one read transaction (the plan reads each bulletin once per session)."""


async def _resolve(plan: BulletinDeliveryPlan, record: DeliveryRecord) -> Any:
    return await plan.resolve(_Session(), record)  # type: ignore[arg-type]


def _plan(deps: RumorControlDeps, uow: FakeUnitOfWork) -> BulletinDeliveryPlan:
    return BulletinDeliveryPlan.from_settings(
        deps.settings, department=deps.department, unit_of_work=lambda _: uow, clock=deps.clock
    )


def _record(order: DeliveryOrder, clock: FakeClock, attempts: int = 0) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=order.delivery_id, aggregate_id=order.aggregate_id,
        aggregate_version=order.aggregate_version, recipient_id=order.recipient_id,
        channel=order.channel, purpose=order.purpose, language=order.language,
        context=order.context, correlation_id=None, attempts=attempts, created_at=clock(),
        give_up_at=clock() + timedelta(hours=2), destination_key=None, last_error_class=None,
    )  # fmt: skip


async def _published(deps: RumorControlDeps, store: Store, clock: FakeClock) -> uuid.UUID:
    bulletin_id = await standby_draft(deps, store, clock)
    await vetting.approve(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        sign_off_languages=["en", "es"],
    )  # fmt: skip
    return bulletin_id


def _order(store: Store, recipient_id: uuid.UUID, channel: str, version: int = 1) -> DeliveryOrder:
    (found,) = [
        o
        for o in store.orders.values()
        if o.recipient_id == recipient_id and o.channel == channel
        and o.aggregate_version == version
    ]  # fmt: skip
    return found


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- resolve ------------------------------------------------------------------------------


async def test_a_liaison_gets_its_language_at_its_webhook_with_a_receipt_link(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await _published(deps, store, clock)
    spanish = deps.department.liaisons[0]
    order = _order(store, spanish.id, "webhook")
    version = store.versions[bulletin_id][1]

    outbound = await _resolve(_plan(deps, FakeUnitOfWork(store)), _record(order, clock))

    assert isinstance(outbound, WebhookOutbound)
    assert outbound.url == spanish.webhook_url
    payload = outbound.payload
    assert payload["delivery_id"] == str(order.delivery_id)
    assert (payload["bulletin_id"], payload["version"]) == (str(bulletin_id), 1)
    assert payload["language"] == "es"
    assert payload["headline"] == version.texts["es"]["headline"]
    assert payload["body"].startswith(version.texts["es"]["body"])
    assert payload["receipt_url"].startswith(f"{deps.public_base_url}/v1/receipts?token=")


async def test_with_a_console_each_message_links_to_the_bulletins_page(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await _published(deps, store, clock)
    spanish = deps.department.liaisons[0]
    desk = deps.department.radio_desk
    assert desk is not None
    settings = deps.settings.model_copy(update={"console_base_url": "https://console.test/"})
    uow = FakeUnitOfWork(store)
    plan = BulletinDeliveryPlan.from_settings(
        settings, department=deps.department, unit_of_work=lambda _: uow, clock=deps.clock
    )
    without = await _resolve(_plan(deps, uow), _record(_order(store, spanish.id, "webhook"), clock))

    hook = await _resolve(plan, _record(_order(store, spanish.id, "webhook"), clock))
    mail = await _resolve(plan, _record(_order(store, desk.id, "email"), clock))

    page = f"https://console.test/bulletins/{bulletin_id}"
    assert isinstance(without, WebhookOutbound)
    assert without.payload["console_url"] is None
    assert isinstance(hook, WebhookOutbound)
    assert hook.payload["console_url"] == page
    assert hook.payload["receipt_url"].startswith(f"{deps.public_base_url}/v1/receipts?token=")
    assert isinstance(mail, EmailOutbound)
    assert f"Léalo en la consola de Aviso:\n{page}" in mail.text
    assert "Por favor, confirme que recibió este boletín" in mail.text


async def test_the_radio_desk_gets_a_spanish_first_script_by_email(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    await _published(deps, store, clock)
    desk = deps.department.radio_desk
    assert desk is not None
    assert desk.email is not None
    order = _order(store, desk.id, "email")

    outbound = await _resolve(_plan(deps, FakeUnitOfWork(store)), _record(order, clock))

    assert isinstance(outbound, EmailOutbound)
    assert outbound.to == desk.email
    assert outbound.subject.startswith("Guion para radio / Radio script:")
    assert outbound.text.index("[ESPAÑOL") < outbound.text.index("[ENGLISH]")
    assert "Por favor, confirme que recibió este boletín" in outbound.text
    assert outbound.language == "es"


async def test_a_superseded_version_and_a_removed_recipient_are_skipped(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await _published(deps, store, clock)
    liaison = deps.department.liaisons[0]
    first = _record(_order(store, liaison.id, "webhook"), clock)
    await publishing.retract(
        FakeUnitOfWork(store), deps=deps, actor=APPROVER, bulletin_id=bulletin_id,
        reason_code="vetter.superseded",
    )  # fmt: skip
    plan = _plan(deps, FakeUnitOfWork(store))

    # published v1 -> Cancel v2: v1 is not sent any more; the correction is.
    assert await _resolve(plan, first) == Skip("superseded")
    correction = _record(_order(store, liaison.id, "webhook", version=2), clock)
    assert isinstance(await _resolve(plan, correction), WebhookOutbound)
    stranger = replace(correction, recipient_id=uuid.uuid4())
    assert await _resolve(plan, stranger) == Skip("unknown_recipient")
    lost = replace(correction, aggregate_id=uuid.uuid4())
    assert await _resolve(plan, lost) == Skip("unknown_bulletin")


async def test_a_channel_without_an_address_fails_for_good_never_another_channel(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    await _published(deps, store, clock)
    english = deps.department.liaisons[1]
    assert english.webhook_url is None
    record = replace(_record(_order(store, english.id, "email"), clock), channel="webhook")

    with pytest.raises(DeliveryError) as failed:
        await _resolve(_plan(deps, FakeUnitOfWork(store)), record)

    assert failed.value.reason == "no_address"
    assert failed.value.permanent


async def test_a_headline_with_a_vertical_tab_still_makes_a_sendable_email(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await _published(deps, store, clock)
    version = store.versions[bulletin_id][1]
    texts = {lang: dict(t) for lang, t in version.texts.items()}
    texts["en"]["headline"] = "Riverton Police:\vno operation\u2028today"
    store.versions[bulletin_id][1] = replace(version, texts=texts)
    english = deps.department.liaisons[1]

    record = _record(_order(store, english.id, "email"), clock)
    outbound = await _resolve(_plan(deps, FakeUnitOfWork(store)), record)

    assert isinstance(outbound, EmailOutbound)
    message = EmailSender(host="127.0.0.1", port=1, sender="aviso@example.org").build(
        to=outbound.to, subject=outbound.subject, text=outbound.text, delivery_id="d-1"
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Riverton Police: no operation today"


# -- hooks --------------------------------------------------------------------------------


async def test_each_failed_attempt_and_the_final_failure_reach_timeline_and_events(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await _published(deps, store, clock)
    liaison = deps.department.liaisons[0]
    record = _record(_order(store, liaison.id, "webhook"), clock)
    uow = FakeUnitOfWork(store)
    plan = _plan(deps, uow)
    retries = _metric(
        "aviso_bulletin_delivery_failures_total", channel="webhook", reason="http_5xx",
        final="false",
    )  # fmt: skip

    attempt = Failure(
        reason="http_5xx", permanent=False, final=False, attempts=1, at=clock(),
        retry_at=clock() + timedelta(seconds=2), destination_key="k",
    )  # fmt: skip
    await plan.on_attempt_failed(_Tx(uow), replace(record, attempts=0), attempt)
    final = replace(attempt, reason="expired", final=True, attempts=4, retry_at=None)
    await plan.on_failed(_Tx(uow), replace(record, attempts=4), final)
    # Not an attempt, but on the timeline as in the router: the breaker kept it off the
    # network (once per cool-down).
    shut = replace(attempt, reason="circuit_open", attempts=1)
    await plan.on_attempt_failed(_Tx(uow), replace(record, attempts=1), shut)

    events = store.events(BulletinDeliveryFailed)
    assert [(e.reason, e.attempts, e.final) for e in events] == [
        ("http_5xx", 1, False),
        ("expired", 4, True),
        ("circuit_open", 1, False),
    ]
    assert {(e.bulletin_id, e.version, e.recipient_id, e.channel) for e in events} == {
        (bulletin_id, 1, liaison.id, "webhook")
    }
    steps = [s for s in store.timeline if s.action == "delivery_failed"]
    assert [(s.detail["reason"], s.detail["attempts"], s.detail["final"]) for s in steps] == [
        ("http_5xx", 1, False),
        ("expired", 4, True),
        ("circuit_open", 1, False),
    ]
    assert liaison.webhook_url is not None
    assert liaison.webhook_url not in repr(steps) + repr(events)
    # Metrics only once the transaction commits.
    assert _metric(
        "aviso_bulletin_delivery_failures_total", channel="webhook", reason="http_5xx",
        final="false",
    ) == retries  # fmt: skip
    await uow.commit()
    assert _metric(
        "aviso_bulletin_delivery_failures_total", channel="webhook", reason="http_5xx",
        final="false",
    ) == retries + 1  # fmt: skip


async def test_delivered_and_skipped_are_on_the_timeline(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await _published(deps, store, clock)
    liaison = deps.department.liaisons[0]
    record = _record(_order(store, liaison.id, "webhook"), clock)
    uow = FakeUnitOfWork(store)
    plan = _plan(deps, uow)

    await plan.on_delivered(
        _Tx(uow), record, Delivered(attempts=2, delivered_at=clock(), destination_key="k")
    )
    await plan.on_skipped(_Tx(uow), record, Skip("superseded"))

    delivered, skipped = store.timeline[-2:]
    assert (delivered.aggregate_id, delivered.action, delivered.version) == (
        bulletin_id, "delivered", 1,
    )  # fmt: skip
    assert delivered.detail["attempts"] == 2
    assert delivered.detail["recipient_id"] == str(liaison.id)
    assert (skipped.action, skipped.detail["skip_reason"]) == ("delivery_skipped", "superseded")
    assert store.events(BulletinDeliveryFailed) == []


async def test_a_batch_of_outcomes_is_one_transition_per_bulletin(
    deps: RumorControlDeps, store: Store, clock: FakeClock
) -> None:
    bulletin_id = await _published(deps, store, clock)
    first, second = deps.department.liaisons[:2]
    third = deps.department.radio_desk
    assert third is not None
    records = [
        _record(_order(store, first.id, "webhook"), clock),
        _record(_order(store, second.id, "email"), clock),
        _record(_order(store, third.id, "email"), clock),
    ]
    uow = FakeUnitOfWork(store)
    applied: list[Any] = []
    apply = uow.bulletins.apply

    async def counting(transition: Any) -> None:
        applied.append(transition)
        await apply(transition)

    uow.bulletins.apply = counting  # type: ignore[method-assign]
    plan = _plan(deps, uow)
    failed = Failure(
        reason="rate_limited", permanent=False, final=False, attempts=1, at=clock(),
        retry_at=clock() + timedelta(seconds=2), destination_key="k",
    )  # fmt: skip
    shut = replace(failed, reason="circuit_open")
    before = len(store.timeline)

    await plan.on_outcomes(_Tx(uow), [  # type: ignore[arg-type]
        Settled(records[0], Delivered(attempts=1, delivered_at=clock(), destination_key="k")),
        Settled(records[1], failed),
        Settled(records[2], shut),  # held by the breaker: on the timeline too
        Settled(records[2], Skip("superseded")),
    ])  # fmt: skip

    assert len(applied) == 1  # one transition for the bulletin: one INSERT of its rows
    steps = store.timeline[before:]
    assert [(s.aggregate_id, s.action, s.detail["recipient_id"]) for s in steps] == [
        (bulletin_id, "delivered", str(first.id)),
        (bulletin_id, "delivery_failed", str(second.id)),
        (bulletin_id, "delivery_failed", str(third.id)),
        (bulletin_id, "delivery_skipped", str(third.id)),
    ]
    failures = store.events(BulletinDeliveryFailed)
    assert [(e.recipient_id, e.channel, e.reason, e.final) for e in failures] == [
        (second.id, "email", "http_5xx", False),
        (third.id, records[2].channel, "circuit_open", False),
    ]
    sent = _metric("aviso_bulletin_deliveries_total", channel="webhook", outcome="sent")
    await uow.commit()  # logs and metrics follow the commit, once per outcome
    assert _metric("aviso_bulletin_deliveries_total", channel="webhook", outcome="sent") == sent + 1


# -- configuration ------------------------------------------------------------------------


def test_bulletins_retry_for_two_hours_by_default(deps: RumorControlDeps, store: Store) -> None:
    plan = _plan(deps, FakeUnitOfWork(store))
    order = next(iter(store.orders.values()), None)
    assert RumorControlSettings().rumor_delivery_give_up_s == 7200
    assert plan.give_up_after(order) == timedelta(hours=2)  # type: ignore[arg-type]
    assert set(plan.channels) == {"webhook", "email", "sms"}  # sms: community subscribers


def test_a_liaison_channel_without_a_sender_stops_the_start(tmp_path: Path) -> None:
    department: dict[str, Any] = yaml.safe_load((PACKAGE_DIR / "department.yaml").read_text())
    department_file = tmp_path / "department.yaml"
    department_file.write_text(yaml.safe_dump(department))
    # Without community subscribers by SMS, no SMS sender is needed either.
    settings = RumorControlSettings(
        var_dir=tmp_path, rumor_department_file=department_file, rumor_sms_subscribers=False
    )

    class _Webhook:
        async def send(self, url: str, payload: Any, *, delivery_id: str) -> int:
            return 204

        async def close(self) -> None:
            return None

    # The bundled department has e-mail liaisons: without an e-mail sender, no start.
    with pytest.raises(MissingSender, match="email"):
        create_app(settings, senders=SenderRegistry(webhook=_Webhook()))

    # With only webhook recipients configured, the same senders are enough.
    department["liaisons"] = [department["liaisons"][0] | {"email": None}]
    department["radio_desk"] = None
    department["drill_audience"] = []
    department_file.write_text(yaml.safe_dump(department))
    app = create_app(settings, senders=SenderRegistry(webhook=_Webhook()))
    assert app.state.delivery_engine is not None
