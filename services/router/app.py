"""Composition root of the router service: wires settings, runtime, handlers and HTTP."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.http import create_http_app
from services.common.runtime import ServiceRuntime
from services.common.settings import get_settings
from services.router.config import RouterSettings

__all__ = ["SERVICE", "create_app"]

SERVICE = "router"


def create_app(settings: RouterSettings | None = None) -> FastAPI:
    """Build the router app; nothing connects until the app's lifespan starts."""
    settings = settings or get_settings(RouterSettings)
    runtime = ServiceRuntime(name=SERVICE, settings=settings)
    return create_http_app(
        runtime,
        title="Aviso router",
        description="Delivers each notice to the single point of contact, tracks acknowledgement and escalates along the configured chain.",
    )
