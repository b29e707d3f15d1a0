"""Composition root of the rumor_control service: builds its deps once, wires HTTP and Kafka."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.http import create_http_app
from services.common.runtime import ServiceRuntime
from services.common.settings import get_settings
from services.rumor_control import subscribers
from services.rumor_control.config import RumorControlSettings
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.http import routers

__all__ = ["SERVICE", "create_app"]

SERVICE = "rumor_control"


def create_app(settings: RumorControlSettings | None = None) -> FastAPI:
    """Build the rumor_control app; nothing connects until the app's lifespan starts."""
    settings = settings or get_settings(RumorControlSettings)
    runtime = ServiceRuntime(name=SERVICE, settings=settings)
    # Read the department, gazetteer and templates now: a bad file stops the start, not the
    # first bulletin.
    deps = RumorControlDeps.build(settings, sessions=runtime.sessions, source=runtime.source)
    subscribers.register(runtime.consumer, deps)
    runtime.add_worker("rumor_control.sender", subscribers.close_sender(deps))
    app = create_http_app(
        runtime,
        title="Aviso rumor control",
        description=(
            "Rumor ledger and vetted English/Spanish bulletins for community liaisons, "
            "the radio desk and the public."
        ),
        routers=routers(deps),
    )
    app.state.rumor_control = deps
    return app
