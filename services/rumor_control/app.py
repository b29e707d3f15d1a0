"""Composition root of the rumor_control service: wires settings, runtime, handlers and HTTP."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.http import create_http_app
from services.common.runtime import ServiceRuntime
from services.common.settings import get_settings
from services.rumor_control.config import RumorControlSettings

__all__ = ["SERVICE", "create_app"]

SERVICE = "rumor_control"


def create_app(settings: RumorControlSettings | None = None) -> FastAPI:
    """Build the rumor_control app; nothing connects until the app's lifespan starts."""
    settings = settings or get_settings(RumorControlSettings)
    runtime = ServiceRuntime(name=SERVICE, settings=settings)
    return create_http_app(
        runtime,
        title="Aviso rumor control",
        description="Rumor ledger and vetted English/Spanish bulletins for community liaisons, the radio desk and the public.",
    )
