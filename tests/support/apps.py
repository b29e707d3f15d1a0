"""Running a service app in-process for tests: lifespan entered, HTTP through ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.common.auth import Role, issue_token
from services.common.db import make_engine, make_session_factory
from services.common.migrations import upgrade
from services.common.settings import CommonSettings

__all__ = ["issue_test_token", "running_app"]


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan (migrations, Kafka, relay, workers) and yield a client.

    The client speaks ASGI directly (no socket); the app's consumers and relay talk to
    the real broker and database named in its settings.
    """
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def issue_test_token(
    settings: CommonSettings,
    role: Role | str,
    name: str,
    subject: str | None = None,
    *,
    restricted_grant: bool = False,
) -> str:
    """Issue a real token in the settings' auth store; returns the plaintext."""
    await upgrade(settings, "auth")
    engine = make_engine(settings, "auth")
    try:
        sessions = make_session_factory(engine)
        async with sessions() as session, session.begin():
            issued = await issue_token(
                session, role=role, name=name, subject=subject, restricted_grant=restricted_grant
            )
        return issued.token
    finally:
        await engine.dispose()
