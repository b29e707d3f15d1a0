"""Composition root of the intake service: wires settings, runtime, handlers and HTTP."""

from __future__ import annotations

from fastapi import FastAPI

from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.topics import NOTICES
from services.common.http import create_http_app
from services.common.runtime import ServiceRuntime
from services.common.settings import get_settings
from services.intake.config import IntakeSettings
from services.intake.crypto import load_keyring
from services.intake.handlers import SignatureCheck, install_error_handlers, router, sweeper
from services.intake.policy import load_policy
from services.intake.service import IntakeContext

__all__ = ["SERVICE", "create_app"]

SERVICE = "intake"

DESCRIPTION = (
    "Records field-office notices of federal immigration operations: durable, validated, "
    "idempotent and versioned (CAP Alert/Update/Cancel), with restricted detail encrypted "
    "at rest and shown only to the single point of contact. Emits notice.* events on "
    f"`{NOTICES}` carrying releasable fields and keyed fingerprints, never restricted detail."
)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    """Build the intake app; nothing connects until the app's lifespan starts."""
    settings = settings or get_settings(IntakeSettings)
    runtime = ServiceRuntime(name=SERVICE, settings=settings)
    # Read now so a bad key or policy file stops the process before it serves anything.
    context = IntakeContext.build(
        settings=settings,
        sessions=runtime.sessions,
        keyring=load_keyring(settings),
        policy=load_policy(settings.intake_policy_file),
        event_source=runtime.source,
    )
    runtime.add_worker(
        "intake-sweeper", sweeper(context, interval_s=settings.intake_sweep_interval_s)
    )
    # Declared for the AsyncAPI document only: events leave through the outbox relay.
    for event in (NoticeReceived, NoticeUpdated, NoticeCancelled):
        runtime.broker.publisher(
            NOTICES,
            title=f"{NOTICES}:{event.event_type}",
            description=(event.__doc__ or "").strip().splitlines()[0],
            schema=event,
        )
    app = create_http_app(runtime, title="Aviso intake", description=DESCRIPTION, routers=[router])
    app.state.intake = context
    app.state.intake_signatures = SignatureCheck.from_settings(settings)
    install_error_handlers(app)
    return app
