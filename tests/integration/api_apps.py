"""The three service apps running in-process on real Kafka and PostgreSQL, for tests that
speak to every API at once (hostile input, the role matrix, the OpenAPI conformance run).

Intake and rumor_control come from their own harnesses; router's is here, one app per
module with a directory of three people and a token for every role.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from deploy.local.sinks import WebhookSink
from services.common.auth import Role
from services.router.app import create_app
from services.router.config import RouterSettings
from tests.integration.router.router_support import (
    People,
    directory_json,
    position_groups_at_end,
    router_settings,
)
from tests.support.apps import issue_test_token, running_app

__all__ = ["RouterApp", "router_running"]


@dataclass
class RouterApp:
    """A running router, its client, its directory's people and a token per role."""

    settings: RouterSettings
    client: httpx.AsyncClient
    people: People
    tokens: dict[str, str]
    webhook: WebhookSink

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@asynccontextmanager
async def router_running(
    tmp: Path, *, database_url: str, kafka_bootstrap: str
) -> AsyncIterator[RouterApp]:
    """Router with the SPOC as `contact` (a directory person) and a token for every role."""
    prefix = f"router-api-{uuid.uuid4().hex[:10]}"

    def make(cls: type[RouterSettings], **values: Any) -> RouterSettings:
        return cls(var_dir=tmp / "var", outbox_poll_interval_s=0.5, log_format="json", **values)

    with WebhookSink() as webhook:
        settings = router_settings(
            make,
            kafka_bootstrap=kafka_bootstrap,
            database_url=database_url,
            smtp_port=1,
            prefix=prefix,
        )
        await position_groups_at_end(kafka_bootstrap, prefix)
        people = People.fresh()
        tokens = {role.value: await issue_test_token(settings, role, role.value) for role in Role}
        tokens["contact"] = await issue_test_token(
            settings, Role.CONTACT, "Assistant Chief", str(people.spoc)
        )
        async with running_app(create_app(settings)) as client:
            running = RouterApp(settings, client, people, tokens, webhook)
            document = directory_json(people, webhook)
            response = await client.put(
                "/v1/directory", json=document, headers=running.auth("admin")
            )
            assert response.status_code == 200, response.text
            yield running
