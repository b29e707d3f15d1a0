"""The signed one-click acknowledgement link; webhook delivery retried, then dead-lettered."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from deploy.local.common import free_port
from deploy.local.sinks import WebhookSink
from services.common.signing import make_link_token
from services.router.domain import alert_id_for
from tests.integration.router.conftest import RouterFactory, Sinks
from tests.integration.router.router_support import (
    LINK_SECRET,
    WEBHOOK_SECRET,
    People,
    alert_events,
    directory_json,
    notice,
    poll_json,
    publish,
    wait_sink,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def token_of(ack_url: str) -> str:
    return parse_qs(urlsplit(ack_url).query)["token"][0]


async def test_ack_through_the_signed_link_after_a_retried_webhook(
    pg_database: str, start_router: RouterFactory, sinks: Sinks, kafka_bootstrap: str
) -> None:
    people = People.fresh()
    # The SPOC's phone gateway answers 503 once: the consumer retries and the second try lands.
    with WebhookSink(secrets=[WEBHOOK_SECRET], fail_first=1) as flaky:
        directory = directory_json(people, flaky, spoc_wait_s=30)
        async with start_router(
            database_url=pg_database, directory=directory, people=people
        ) as router:
            first = notice(status="Test")
            alert_id = alert_id_for(first.notice_id)
            await publish(kafka_bootstrap, first)
            hooks = await wait_sink(flaky, lambda items: len(items) >= 1)
            hook = hooks[0]["payload"]
            assert hook["alert_id"] == str(alert_id)
            token = token_of(hook["ack_url"])

            delivered = await alert_events(
                kafka_bootstrap,
                alert_id,
                until=lambda es: any(
                    e["type"] == "alert.delivered" and e["data"]["channel"] == "webhook" for e in es
                ),
            )
            webhook_delivery = next(
                e["data"]
                for e in delivered
                if e["type"] == "alert.delivered" and e["data"]["channel"] == "webhook"
            )
            assert webhook_delivery["attempts"] == 2  # one 503, then success

            # Opening the link only shows a confirmation page (mail scanners open links).
            page = await router.client.get("/ack", params={"token": token})
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "DRILL" in page.text
            assert "acknowledge" in page.text.lower()
            assert page.headers["cache-control"] == "no-store"
            alert = (await router.client.get(f"/v1/alerts/{alert_id}", headers=router.ops)).json()
            assert alert["state"] != "acknowledged"

            done = await router.client.post(
                "/ack",
                content=f"token={token}&comment=on+my+way",
                headers={
                    "content-type": "application/x-www-form-urlencoded",
                    "accept": "text/html",
                },
            )
            assert done.status_code == 200, done.text
            assert "Acknowledged" in done.text
            again = await router.client.post(
                "/ack", json={"token": token}, headers={"accept": "application/json"}
            )
            assert again.status_code == 200
            assert again.json()["already_acknowledged"] is True

            alert = (await router.client.get(f"/v1/alerts/{alert_id}", headers=router.ops)).json()
            assert alert["state"] == "acknowledged"
            assert alert["ack_method"] == "link"
            assert alert["acknowledged_by"] == str(people.spoc)
            events = await alert_events(
                kafka_bootstrap,
                alert_id,
                until=lambda es: any(e["type"] == "alert.acknowledged" for e in es),
            )
            ack = next(e["data"] for e in events if e["type"] == "alert.acknowledged")
            assert ack["method"] == "link"
            assert ack["acknowledged_by"] == str(people.spoc)


async def test_expired_or_tampered_links_are_refused(
    pg_database: str, start_router: RouterFactory, sinks: Sinks, kafka_bootstrap: str
) -> None:
    async with start_router(database_url=pg_database) as router:
        first = notice()
        alert_id = alert_id_for(first.notice_id)
        await publish(kafka_bootstrap, first)
        await poll_json(
            router.client, f"/v1/alerts/{alert_id}", router.ops, lambda a: a["state"] == "delivered"
        )
        hook = next(
            h["payload"]
            for h in sinks.webhook.received
            if h["payload"].get("alert_id") == str(alert_id)
        )
        token = token_of(hook["ack_url"])
        payload, mac = token.split(".")
        tampered = f"{payload}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}"
        claims = {"a": str(alert_id), "v": 1, "p": str(router.people.spoc)}
        expired = make_link_token(LINK_SECRET.encode(), claims, expires_at=int(time.time()) - 5)
        forged = make_link_token(b"not-the-secret", claims, expires_at=int(time.time()) + 600)
        other_alert = make_link_token(
            LINK_SECRET.encode(),
            {**claims, "a": str(uuid.uuid4())},
            expires_at=int(time.time()) + 600,
        )

        for bad, status in ((tampered, 403), (forged, 403), (expired, 410), (other_alert, 403)):
            as_json = await router.client.post(
                "/ack", json={"token": bad}, headers={"accept": "application/problem+json"}
            )
            assert as_json.status_code == status, (bad, as_json.text)
            assert as_json.headers["content-type"] == "application/problem+json"
            assert as_json.json()["status"] == status
            as_page = await router.client.get(
                "/ack", params={"token": bad}, headers={"accept": "text/html,*/*;q=0.8"}
            )
            assert as_page.status_code == status
            assert as_page.headers["content-type"].startswith("text/html")
            # A client that does not ask for HTML gets the problem, not a page.
            as_any = await router.client.get("/ack", params={"token": bad})
            assert as_any.status_code == status
            assert as_any.headers["content-type"] == "application/problem+json"
        assert (await router.client.get("/ack", params={"token": "garbage"})).status_code == 403

        alert = (await router.client.get(f"/v1/alerts/{alert_id}", headers=router.ops)).json()
        assert alert["state"] == "delivered", "no refused link may acknowledge"
        # The genuine link still works afterwards.
        ok = await router.client.post(
            "/ack", json={"token": token}, headers={"accept": "application/json"}
        )
        assert ok.status_code == 200


async def test_unreachable_webhook_fails_on_the_timeline_and_email_still_goes(
    pg_database: str, start_router: RouterFactory, sinks: Sinks, kafka_bootstrap: str
) -> None:
    people = People.fresh()
    directory = directory_json(people, sinks.webhook, spoc_wait_s=60)
    directory["people"][0]["channels"]["webhook_url"] = f"http://127.0.0.1:{free_port()}/gone"
    async with start_router(
        database_url=pg_database,
        directory=directory,
        people=people,
        delivery_retry_base_s=0.1,
        delivery_retry_max_s=0.3,
        router_delivery_give_up_s=2.0,
    ) as router:
        first = notice()
        alert_id = alert_id_for(first.notice_id)
        await publish(kafka_bootstrap, first)
        await wait_sink(sinks.smtp, lambda items: any(str(alert_id) in m["text"] for m in items))

        def webhook_failures(body: dict[str, Any]) -> list[dict[str, Any]]:
            return [
                e
                for e in body["entries"]
                if e["kind"] == "delivery_failed" and e["channel"] == "webhook"
            ]

        body = await poll_json(
            router.client,
            f"/v1/alerts/{alert_id}/timeline",
            router.ops,
            lambda b: any(e["detail"]["final"] for e in webhook_failures(b)),
        )
        failures = webhook_failures(body)
        # Retried (same delivery id) until the give-up time, then failed for good.
        assert len(failures) >= 2
        assert {e["delivery_id"] for e in failures} == {failures[0]["delivery_id"]}
        assert {e["detail"]["reason"] for e in failures} == {"unreachable"}
        assert [e["detail"]["final"] for e in failures][-1] is True
        assert not any(e["detail"]["final"] for e in failures[:-1])
        assert "127.0.0.1" not in json.dumps(failures)  # never an address
        assert [e["channel"] for e in body["entries"] if e["kind"] == "delivered"] == ["email"]

        events = await alert_events(
            kafka_bootstrap,
            alert_id,
            until=lambda es: any(
                e["type"] == "alert.delivery_failed" and e["data"]["final"] for e in es
            ),
        )
        failed = [e["data"] for e in events if e["type"] == "alert.delivery_failed"]
        assert {(f["channel"], f["reason"]) for f in failed} == {("webhook", "unreachable")}
        # The e-mail reached the SPOC, so the step is not unreachable: no early escalation.
        alert = (await router.client.get(f"/v1/alerts/{alert_id}", headers=router.ops)).json()
        assert alert["state"] == "delivered"
        assert alert["escalation_count"] == 0
        metrics = (await router.client.get("/metrics")).text
        assert (
            'aviso_router_delivery_failures_total{channel="webhook",final="true",'
            'reason="unreachable"}' in metrics
        )
