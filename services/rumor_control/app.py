"""Composition root of the rumor_control service: builds its deps once, wires HTTP, Kafka
and the delivery engine."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.common.delivery import (
    DeliveryEngine,
    EmailSender,
    KannelSender,
    SenderRegistry,
    WebhookSender,
)
from services.common.delivery.registry import SmsTransport
from services.common.http import create_http_app
from services.common.runtime import ServiceRuntime, Worker
from services.common.settings import get_settings
from services.rumor_control import subscribers
from services.rumor_control.config import RumorControlSettings
from services.rumor_control.delivery.plan import BulletinDeliveryPlan
from services.rumor_control.department import DepartmentConfig
from services.rumor_control.deps import RumorControlDeps, department_of, public_base_url
from services.rumor_control.http import PROBLEMS, routers, sms
from services.rumor_control.tables import delivery_records
from services.rumor_control.unit_of_work import RumorControlUnitOfWork

__all__ = ["SERVICE", "create_app", "default_senders"]

SERVICE = "rumor_control"


def default_senders(
    settings: RumorControlSettings, department: DepartmentConfig | None = None
) -> SenderRegistry:
    """Signed webhooks, pooled SMTP and (for community subscribers, or liaisons with a
    number in `department`) SMS, as configured."""
    wants_sms = settings.rumor_sms_subscribers or (
        department is not None and "sms" in department.channels()
    )
    return SenderRegistry(
        webhook=WebhookSender.from_settings(settings),
        email=EmailSender.from_settings(settings),
        sms=_sms_sender(settings) if wants_sms else None,
    )


def _sms_sender(settings: RumorControlSettings) -> KannelSender:
    # Reports come back to this service's own endpoint unless `kannel_dlr_url` says where.
    return KannelSender.from_settings(
        settings, dlr_url=f"{public_base_url(settings)}{sms.REPORTS_PATH}"
    )


def _replies(sms: SmsTransport | None) -> SmsTransport | None:
    # A reply to a keyword has no delivery record for a report to land on.
    return sms.unreported() if isinstance(sms, KannelSender) else sms


def _delivering(engine: DeliveryEngine, senders: SenderRegistry) -> Worker:
    """The engine's dispatcher; once it has stopped (sends in flight recorded), the
    senders' connections are closed."""

    async def run(stop: asyncio.Event) -> None:
        await engine.run(stop)
        await senders.close()

    return run


def create_app(
    settings: RumorControlSettings | None = None, *, senders: SenderRegistry | None = None
) -> FastAPI:
    """Build the rumor_control app; nothing connects until the app's lifespan starts.

    Fails here (MissingSender) when a liaison or the radio desk is configured on a channel
    that has no sender.
    """
    settings = settings or get_settings(RumorControlSettings)
    runtime = ServiceRuntime(name=SERVICE, settings=settings)
    runtime.relay.linger(settings.rumor_outbox_linger_ms / 1000)
    # Read the department, gazetteer and templates now: a bad file stops the start, not the
    # first bulletin.
    department = department_of(settings)
    senders = senders or default_senders(settings, department)
    source = runtime.source
    plan = BulletinDeliveryPlan.from_settings(
        settings,
        department=department,
        unit_of_work=lambda session: RumorControlUnitOfWork.on_session(session, source=source),
    )
    engine = DeliveryEngine.create(
        sessions=runtime.sessions, table=delivery_records, senders=senders, plan=plan,
        service=SERVICE, settings=settings,
    )  # fmt: skip
    deps = RumorControlDeps.build(
        settings, sessions=runtime.sessions, source=source, delivery=engine,
        department=department, replies=_replies(senders.sms), wake_delivery=engine.wake,
    )  # fmt: skip
    subscribers.register(runtime.consumer, deps)
    runtime.add_worker("rumor_control.delivery", _delivering(engine, senders))
    app = create_http_app(
        runtime,
        title="Aviso rumor control",
        description=(
            "Rumor ledger and vetted English/Spanish bulletins for community liaisons, "
            "the radio desk and the public."
        ),
        routers=routers(deps),
        problems=PROBLEMS,
    )
    app.state.rumor_control = deps
    app.state.delivery_engine = engine
    return app
