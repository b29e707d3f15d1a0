"""Composition root of the rumor_control service: wires settings, runtime, handlers and HTTP."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.http import create_http_app
from services.common.runtime import ServiceRuntime
from services.common.settings import get_settings
from services.rumor_control.config import RumorControlSettings
from services.rumor_control.handlers import (
    feeds_router,
    receipts_router,
    register_consumers,
    rumor_router,
)
from services.rumor_control.service import Context

__all__ = ["SERVICE", "create_app"]

SERVICE = "rumor_control"


def create_app(settings: RumorControlSettings | None = None) -> FastAPI:
    """Build the rumor_control app; nothing connects until the app's lifespan starts."""
    settings = settings or get_settings(RumorControlSettings)
    runtime = ServiceRuntime(name=SERVICE, settings=settings)
    # Read the department, gazetteer and templates now: a bad file stops the start, not the
    # first bulletin.
    ctx = Context.from_settings(settings, source=runtime.source)
    register_consumers(runtime, ctx)
    app = create_http_app(
        runtime,
        title="Aviso rumor control",
        description=(
            "Rumor ledger and vetted English/Spanish bulletins for community liaisons, "
            "the radio desk and the public."
        ),
        routers=[
            rumor_router(ctx, runtime),
            receipts_router(ctx, runtime),
            feeds_router(ctx, runtime),
        ],
    )
    app.state.rumor_control = ctx
    return app
