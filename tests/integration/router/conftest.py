"""Fixtures of the router's integration tests (real Kafka, real PostgreSQL, real sinks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from deploy.local.sinks import SmtpSink, WebhookSink
from services.common.auth import Role
from services.router.app import create_app
from services.router.config import RouterSettings
from tests.integration.router.router_support import (
    WEBHOOK_SECRET,
    ManualClock,
    People,
    directory_json,
    position_groups_at_end,
    router_settings,
)
from tests.support.apps import issue_test_token, running_app


@dataclass
class Sinks:
    webhook: WebhookSink
    smtp: SmtpSink


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    """A signature-checking webhook sink and an SMTP sink, both real servers."""
    with WebhookSink(secrets=[WEBHOOK_SECRET]) as webhook, SmtpSink() as smtp:
        yield Sinks(webhook, smtp)


@dataclass
class RouterUnderTest:
    """A running router app, its HTTP client and tokens."""

    settings: RouterSettings
    prefix: str
    client: httpx.AsyncClient
    people: People
    admin: dict[str, str]
    ops: dict[str, str]

    async def contact(self, person: Any) -> dict[str, str]:
        token = await issue_test_token(
            self.settings, Role.CONTACT, f"contact {person}", str(person)
        )
        return {"Authorization": f"Bearer {token}"}

    async def put_directory(self, document: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.put("/v1/directory", json=document, headers=self.admin)
        assert response.status_code == 200, response.text
        return dict(response.json())


RouterFactory = Callable[..., AbstractAsyncContextManager[RouterUnderTest]]


@pytest.fixture
def start_router(
    kafka_bootstrap: str,
    make_settings: Callable[..., Any],
    unique: Callable[[str], str],
    sinks: Sinks,
) -> RouterFactory:
    """Start a router app (own consumer groups at the end of the topics) with a directory."""

    @asynccontextmanager
    async def start(
        *,
        database_url: str | None,
        directory: dict[str, Any] | None = None,
        people: People | None = None,
        prefix: str | None = None,
        put_directory: bool = True,
        clock: ManualClock | None = None,
        **overrides: Any,
    ) -> AsyncIterator[RouterUnderTest]:
        """`prefix` given: a restart (the groups keep their offsets); else fresh groups.

        `clock` given: the router reads time from it, so timers fire when the test moves it.
        """
        restart = prefix is not None
        prefix = prefix or unique("router-test")
        settings = router_settings(
            make_settings,
            kafka_bootstrap=kafka_bootstrap,
            database_url=database_url,
            smtp_port=overrides.pop("smtp_port", sinks.smtp.port),
            prefix=prefix,
            **overrides,
        )
        if not restart:
            await position_groups_at_end(kafka_bootstrap, prefix)
        people = people or People.fresh()
        admin = await issue_test_token(settings, Role.ADMIN, "admin")
        ops = await issue_test_token(settings, Role.OPS, "ops")
        app = create_app(settings, clock=clock) if clock is not None else create_app(settings)
        async with running_app(app) as client:
            router = RouterUnderTest(
                settings,
                prefix,
                client,
                people,
                {"Authorization": f"Bearer {admin}"},
                {"Authorization": f"Bearer {ops}"},
            )
            if put_directory:
                await router.put_directory(directory or directory_json(people, sinks.webhook))
            yield router

    return start
