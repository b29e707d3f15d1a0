"""Composition root of the router service: builds one `RouterDeps`, wires HTTP and Kafka."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.http import create_http_app
from services.common.migrations import upgrade
from services.common.runtime import ServiceRuntime
from services.common.settings import get_settings
from services.router.config import RouterSettings
from services.router.delivery import ChannelAdapters
from services.router.deps import Clock, RouterDeps, utcnow
from services.router.directory import load_directory_file
from services.router.escalation import EscalationWorker
from services.router.http import routers
from services.router.subscribers import register_consumers

__all__ = ["SERVICE", "RouterRuntime", "create_app"]

SERVICE = "router"


class RouterRuntime(ServiceRuntime):
    """The common runtime, plus: load the directory file before consuming; close channels."""

    def __init__(
        self, *, settings: RouterSettings, channels: ChannelAdapters, clock: Clock = utcnow
    ) -> None:
        super().__init__(name=SERVICE, settings=settings)
        self.router_settings = settings
        self.channels = channels
        self.deps = RouterDeps(
            settings=settings,
            sessions=self.sessions,
            channels=channels,
            source=self.source,
            clock=clock,
        )

    async def start(self, *, migrate: bool = True) -> None:
        """Migrate, apply the directory file, then start consuming.

        The directory must be in place before the first notice is consumed, or that
        notice would fail (and retry) for want of anyone to alert.
        """
        if migrate:
            await upgrade(self.settings, "auth")
            await upgrade(self.settings, self.component)
        if self.router_settings.router_directory_file is not None:
            await load_directory_file(
                deps=self.deps, path=self.router_settings.router_directory_file
            )
        await super().start(migrate=False)

    async def stop(self) -> None:
        """Stop as the common runtime does, then close the webhook connection pool."""
        await super().stop()
        await self.channels.close()


def create_app(settings: RouterSettings | None = None, *, clock: Clock = utcnow) -> FastAPI:
    """Build the router app; nothing connects until the app's lifespan starts.

    `clock` is for tests that move time on instead of waiting for it.
    """
    settings = settings or get_settings(RouterSettings)
    runtime = RouterRuntime(
        settings=settings, channels=ChannelAdapters.from_settings(settings), clock=clock
    )
    register_consumers(runtime.consumer, runtime.deps)
    runtime.add_worker("escalation-timers", EscalationWorker(runtime.deps).run)
    return create_http_app(
        runtime,
        title="Aviso router",
        description=(
            "Delivers each notice to the single point of contact, tracks acknowledgement and "
            "escalates along the configured chain."
        ),
        routers=routers(runtime.deps),
    )
