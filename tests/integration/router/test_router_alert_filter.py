"""`GET /v1/alerts?notice_id=`: a client that submitted a notice finds its alert (real Kafka
and PostgreSQL), and a malformed id is a 422 problem."""

from __future__ import annotations

import uuid

import pytest

from services.router.domain import alert_id_for
from tests.integration.router.conftest import RouterFactory
from tests.integration.router.router_support import notice, poll_json, publish

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_alerts_are_filtered_by_notice(
    database_url: str | None, start_router: RouterFactory, kafka_bootstrap: str
) -> None:
    async with start_router(database_url=database_url) as router:
        mine, other = notice(), notice()
        for received in (mine, other):
            await publish(kafka_bootstrap, received)
        for received in (mine, other):
            await poll_json(
                router.client, f"/v1/alerts/{alert_id_for(received.notice_id)}", router.ops,
                lambda body: "id" in body,
            )  # fmt: skip

        found = await router.client.get(
            "/v1/alerts", params={"notice_id": str(mine.notice_id)}, headers=router.ops
        )
        assert found.status_code == 200, found.text
        items = found.json()["items"]
        assert [item["id"] for item in items] == [str(alert_id_for(mine.notice_id))]
        assert items[0]["notice_id"] == str(mine.notice_id)

        none = await router.client.get(
            "/v1/alerts", params={"notice_id": str(uuid.uuid4())}, headers=router.ops
        )
        assert none.json()["items"] == []

        malformed = await router.client.get(
            "/v1/alerts", params={"notice_id": "not-a-uuid"}, headers=router.ops
        )
        assert malformed.status_code == 422
        assert malformed.headers["content-type"].startswith("application/problem+json")

        spec = (await router.client.get("/openapi.json")).json()
        parameters = spec["paths"]["/v1/alerts"]["get"]["parameters"]
        assert "notice_id" in {p["name"] for p in parameters}
