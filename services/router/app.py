"""Composition root of the router service: builds one `RouterDeps`, wires HTTP and Kafka."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from fastapi import FastAPI

from schemas.topics import DIRECTORY
from services.common.delivery import (
    DeliveryEngine,
    EmailSender,
    KannelSender,
    SenderRegistry,
    WebhookSender,
)
from services.common.http import create_http_app
from services.common.migrations import upgrade
from services.common.outbox import OutboxRelay
from services.common.runtime import ServiceRuntime
from services.common.settings import get_settings
from services.router.config import RouterSettings
from services.router.delivery import RouterDeliveryPlan
from services.router.deps import Clock, RouterDeps, utcnow
from services.router.directory import announce_directory_at_start, load_directory_file
from services.router.escalation import EscalationWorker
from services.router.http import PROBLEMS, routers
from services.router.http.sms import REPORTS_PATH
from services.router.subscribers import register_consumers
from services.router.tables import delivery_records

__all__ = ["SERVICE", "RouterRuntime", "create_app", "default_senders", "linger_relay"]

SERVICE = "router"


def default_senders(settings: RouterSettings) -> SenderRegistry:
    """A sender for every channel: signed webhooks, pooled SMTP e-mail, SMS through Kannel."""
    return SenderRegistry(
        webhook=WebhookSender.from_settings(settings),
        email=EmailSender.from_settings(settings),
        sms=KannelSender.from_settings(settings, dlr_url=_own_url(settings, REPORTS_PATH)),
    )


def linger_relay(relay: OutboxRelay, settings: RouterSettings) -> None:
    """Router's relay waits a moment for the next notices' alert events (their consumers
    read them in batches, a second apart), but sends a directory change at once: intake
    decides who reads restricted detail by it, and a contact alerted just after the
    change may fetch the notice at once. The lease bounds the linger (lingering.py)."""
    linger_s = min(settings.router_outbox_linger_ms / 1000, settings.outbox_claim_ttl_s / 6)
    relay.linger(linger_s, at_once=(DIRECTORY,))


def _own_url(settings: RouterSettings, path: str) -> str:
    """Where the SMS gateway reaches this router (`public_base_url`, else its own port)."""
    base = settings.public_base_url or f"http://{settings.http_host}:{settings.router_port}"
    return base.rstrip("/") + path


class RouterRuntime(ServiceRuntime):
    """The common runtime, plus: the delivery engine, the escalation worker, the directory
    file, closing senders.

    Raises MissingSender when a channel the router delivers on has no sender.
    """

    def __init__(
        self, *, settings: RouterSettings, senders: SenderRegistry, clock: Clock = utcnow
    ) -> None:
        super().__init__(name=SERVICE, settings=settings)
        self.router_settings = settings
        self.senders = senders
        # The plan needs the deps (settings, clock) and the deps need the engine the plan
        # drives: the plan gets the deps without the engine (its hooks order nothing).
        base = RouterDeps(
            settings=settings,
            sessions=self.sessions,
            source=self.source,
            clock=clock,
            wake_escalation=self._wake_escalation,
            timer_set=self._timer_set,
        )
        self.delivery = DeliveryEngine.create(
            sessions=self.sessions,
            table=delivery_records,
            senders=senders,
            plan=RouterDeliveryPlan(base),
            service=SERVICE,
            settings=settings,
            # The plan's hooks log each delivered and skipped notification as
            # `alert.delivered` / `alert.delivery_skipped`, with the engine's fields.
            outcome_lines=False,
        )
        self.deps = replace(base, delivery=self.delivery, wake_delivery=self.delivery.wake)
        self.add_worker("delivery", self.delivery.run)
        self.escalation = EscalationWorker(self.deps)
        self.add_worker("escalation-timers", self.escalation.run)

    def _wake_escalation(self) -> None:
        """A step's every channel failed and its timer was made due: fire it now."""
        self.escalation.wake()

    def _timer_set(self, at: datetime) -> None:
        """An alert opened or re-opened here has a deadline at `at`."""
        self.escalation.timer_set(at)

    async def start(self, *, migrate: bool = True) -> None:
        """Migrate, apply the directory file, then start consuming.

        The directory must be in place before the first notice is consumed, or that
        notice would fail (and retry) for want of anyone to alert.
        """
        if migrate:
            await upgrade(self.settings, "auth")
            await upgrade(self.settings, self.component)
        loaded = None
        if self.router_settings.router_directory_file is not None:
            loaded = await load_directory_file(
                deps=self.deps, path=self.router_settings.router_directory_file
            )
        if loaded is None:
            # Unchanged (or no file): announced already, unless stored before announcements.
            await announce_directory_at_start(deps=self.deps)
        await super().start(migrate=False)

    async def stop(self) -> None:
        """Stop as the common runtime does (the engine finishes its sends), then the senders."""
        await super().stop()
        await self.senders.close()


def create_app(
    settings: RouterSettings | None = None,
    *,
    clock: Clock = utcnow,
    senders: SenderRegistry | None = None,
) -> FastAPI:
    """Build the router app; nothing connects until the app's lifespan starts.

    `clock` is for tests that move time on instead of waiting for it.
    """
    settings = settings or get_settings(RouterSettings)
    runtime = RouterRuntime(
        settings=settings, senders=senders or default_senders(settings), clock=clock
    )
    linger_relay(runtime.relay, settings)
    register_consumers(runtime.consumer, runtime.deps)
    return create_http_app(
        runtime,
        title="Aviso router",
        description=(
            "Delivers each notice to the single point of contact, tracks acknowledgement and "
            "escalates along the configured chain."
        ),
        routers=routers(runtime.deps),
        problems=PROBLEMS,
    )
