"""Composition root of the intake service: builds one IntakeDeps, wires HTTP and the sweeper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.topics import NOTICES
from services.common.http import create_http_app
from services.common.runtime import ServiceRuntime
from services.common.serve import worker_role
from services.common.settings import get_settings
from services.intake.config import IntakeSettings
from services.intake.crypto import load_keyring
from services.intake.deps import Clock, IntakeDeps, utc_now
from services.intake.directory import directory_fact
from services.intake.http import SUBMISSION_PATH, install_error_handlers, routers
from services.intake.http.submission_layer import PlainSubmissionLayer
from services.intake.policy import load_policy
from services.intake.subscribers import register
from services.intake.worker import sealer, sweeper

__all__ = ["SERVICE", "IntakeService", "compose", "create_app"]

SERVICE = "intake"

DESCRIPTION = (
    "Records field-office notices of federal immigration operations: durable, validated, "
    "idempotent and versioned (CAP Alert/Update/Cancel), with restricted detail encrypted "
    "at rest and shown only to the single point of contact. Emits notice.* events on "
    f"`{NOTICES}` carrying releasable fields and keyed fingerprints, never restricted detail."
)


@dataclass(frozen=True)
class IntakeService:
    """The assembled service: its app and the one deps object it was built with."""

    app: FastAPI
    deps: IntakeDeps


def compose(settings: IntakeSettings | None = None, *, clock: Clock = utc_now) -> IntakeService:
    """Build the intake app and its deps; nothing connects until the app's lifespan starts."""
    settings = settings or get_settings(IntakeSettings)
    leads = worker_role().leads
    runtime = ServiceRuntime(name=SERVICE, settings=settings, prunes_messaging=leads)
    # Read now so a bad key or policy file stops the process before it serves anything.
    deps = IntakeDeps.build(
        settings=settings,
        sessions=runtime.sessions,
        keyring=load_keyring(settings),
        policy=load_policy(settings.intake_policy_file),
        event_source=runtime.source,
        clock=clock,
    )
    if leads:
        # Once per group of worker processes (services/common/serve.py), as the outbox
        # and inbox retention is: the rest serve requests and relay their own outbox
        # rows only.
        runtime.add_worker("intake-sweeper", sweeper(deps))
        runtime.add_worker("intake-audit-sealer", sealer(deps))
        # Who is in the directory in force decides which contacts read restricted detail.
        register(runtime.consumer, settings)
    runtime.add_fact("directory", lambda: _directory_fact(deps))
    # Declared for the AsyncAPI document only: events leave through the outbox relay.
    for event in (NoticeReceived, NoticeUpdated, NoticeCancelled):
        runtime.broker.publisher(
            NOTICES,
            title=f"{NOTICES}:{event.event_type}",
            description=(event.__doc__ or "").strip().splitlines()[0],
            schema=event,
        )
    app = create_http_app(
        runtime, title="Aviso intake", description=DESCRIPTION, routers=routers(deps)
    )
    install_error_handlers(app)
    # The innermost of the app's own middlewares: ids, the body guard, metrics and the log
    # line wrap a plain submission as they wrap every request (http/submission_layer.py).
    app.user_middleware.append(Middleware(PlainSubmissionLayer, path=SUBMISSION_PATH))
    return IntakeService(app, deps)


async def _directory_fact(deps: IntakeDeps) -> dict[str, Any]:
    async with deps.unit_of_work() as uow:
        return await directory_fact(uow)


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    """Build the intake app; nothing connects until the app's lifespan starts."""
    return compose(settings).app
