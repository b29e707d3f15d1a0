"""Composition root of the intake service: wires settings, runtime, handlers and HTTP."""

from __future__ import annotations

from fastapi import FastAPI

from services.common.http import create_http_app
from services.common.runtime import ServiceRuntime
from services.common.settings import get_settings
from services.intake.config import IntakeSettings

__all__ = ["SERVICE", "create_app"]

SERVICE = "intake"


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    """Build the intake app; nothing connects until the app's lifespan starts."""
    settings = settings or get_settings(IntakeSettings)
    runtime = ServiceRuntime(name=SERVICE, settings=settings)
    return create_http_app(
        runtime,
        title="Aviso intake",
        description="Records field-office notices of federal immigration operations: durable, validated, idempotent, versioned; restricted details encrypted at rest.",
    )
