"""The SPOC by SMS through a real Kannel (bearerbox, smsbox, fake SMSC), Kafka and PostgreSQL.

The router app runs in-process (ASGI, no socket), so Kannel's callbacks (delivery
reports at the `dlr-url` each SMS names, replies at the sms-service's `get-url`) reach
a relay standing in for the network (tests/support/sms_gateway.py), which forwards each
request, as Kannel made it, to the app. The fake SMSC always reports "delivered to the handset"; the
test of a handset failure rewrites that report's type to 2 ("not delivered"), as a
carrier would have sent it, and lets the signature Kannel carried back do its work.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from deploy.local import kannel
from schemas.topics import ALERTS
from services.common.db import make_engine
from services.router.domain import alert_id_for
from services.router.domain.sms import sms_code
from services.router.tables import delivery_records
from tests.integration.router.conftest import RouterFactory, RouterUnderTest, Sinks
from tests.integration.router.router_support import (
    People,
    alert_events,
    notice,
    poll_json,
    publish,
    wait_sink,
)
from tests.support.infra import infra_unavailable
from tests.support.kafka_io import read_topic, wait_for
from tests.support.sms_gateway import Relay, forwarding, serve_relay, texts_to

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

DLR_SECRET = "router-sms-test-dlr-secret"
MO_SECRET = "router-sms-test-reply-secret"
SPOC_NUMBER = "+15557650101"
STRANGER = "+15557650199"
PATHS = ("/sms/reports", "/sms/replies")
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    with serve_relay() as found:
        yield found


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, relay: Relay
) -> Iterator[tuple[kannel.KannelEndpoints, Path]]:
    data_dir = tmp_path_factory.mktemp("kannel")
    try:
        endpoints = kannel.start(
            data_dir=data_dir, mo_url=f"{relay.url}/sms/replies?key={MO_SECRET}"
        )
    except Exception as exc:
        infra_unavailable("Kannel", exc)
        raise
    try:
        yield endpoints, data_dir
    finally:
        kannel.stop(data_dir=data_dir)


def sms_settings(endpoints: kannel.KannelEndpoints, relay: Relay) -> dict[str, Any]:
    return {
        "kannel_sendsms_url": endpoints.sendsms_url,
        "kannel_username": endpoints.username,
        "kannel_password": endpoints.password,
        "kannel_sender": kannel.SHORT_CODE,
        "kannel_dlr_url": f"{relay.url}/sms/reports",
        "kannel_dlr_secret": DLR_SECRET,
        "kannel_mo_secret": MO_SECRET,
        "kannel_handset_retry_s": 0.2,
    }


def sms_directory(people: People, sinks: Sinks, *, spoc_channels: dict[str, str]) -> dict[str, Any]:
    """The SPOC on `spoc_channels`, then the backup by webhook."""
    return {
        "people": [
            {"id": str(people.spoc), "name": "Assistant Chief", "channels": spoc_channels},
            {
                "id": str(people.backup),
                "name": "Captain (backup)",
                "channels": {"webhook_url": sinks.webhook.url(f"/hooks/{people.backup}")},
            },
        ],
        "spoc": {"person_id": str(people.spoc)},
        "policy": {
            "steps": [
                {"target": "spoc", "wait_s": 600},
                {"target": "person", "person_id": str(people.backup), "wait_s": 600},
            ]
        },
    }


async def timeline(router: RouterUnderTest, alert_id: uuid.UUID) -> list[dict[str, Any]]:
    response = await router.client.get(f"/v1/alerts/{alert_id}/timeline", headers=router.ops)
    assert response.status_code == 200, response.text
    body = response.json()
    return list(body["entries"] if isinstance(body, dict) else body)


async def wait_timeline(
    router: RouterUnderTest,
    alert_id: uuid.UUID,
    predicate: Callable[[list[dict[str, Any]]], bool],
    within: float = 20.0,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        entries = await timeline(router, alert_id)
        if predicate(entries):
            return entries
        await asyncio.sleep(0.1)
    raise AssertionError(f"timeline never satisfied the condition: {entries}")


def replied(answered: list[tuple[str, int]]) -> list[int]:
    return [status for path, status in answered if path == "/sms/replies"]


def reports(entries: list[dict[str, Any]]) -> list[str]:
    return [e["detail"]["status"] for e in entries if e["kind"] == "delivery_report"]


@postgres_only
async def test_the_spocs_alert_by_sms_and_a_reply_1_acknowledges_it(
    database_url: str | None,
    start_router: RouterFactory,
    sinks: Sinks,
    kafka_bootstrap: str,
    gateway: tuple[kannel.KannelEndpoints, Path],
    relay: Relay,
) -> None:
    endpoints, data_dir = gateway
    people = People.fresh()
    directory = sms_directory(people, sinks, spoc_channels={"sms": SPOC_NUMBER})
    settings = sms_settings(endpoints, relay)
    with structlog.testing.capture_logs() as logs:
        async with (
            start_router(
                database_url=database_url, people=people, directory=directory, **settings
            ) as router,
            forwarding(relay, router.client, paths=PATHS) as answered,
        ):
            sent = notice()
            alert_id = alert_id_for(sent.notice_id)
            before = len(kannel.received(data_dir=data_dir))
            await publish(kafka_bootstrap, sent)

            (text,) = await texts_to(data_dir, SPOC_NUMBER, 1)
            code = sms_code(alert_id)
            assert text.sender == kannel.SHORT_CODE
            assert text.data.decode().startswith(f"Aviso {code}: HIGH URGENCY")
            assert text.data.decode().endswith(f"Reply 1 {code} to acknowledge.")
            # Kannel's reports, forwarded as Kannel made them, are on the timeline.
            entries = await wait_timeline(router, alert_id, lambda es: "delivered" in reports(es))
            # The fake SMSC reports 8 then 1; Kannel may deliver them in either order, and a
            # late "accepted" says nothing new after "delivered".
            assert reports(entries)[-1] == "delivered"
            assert set(reports(entries)) <= {"accepted", "delivered"}

            # A stranger's "1" changes nothing; the SPOC's "1" acknowledges.
            kannel.inject(STRANGER, kannel.SHORT_CODE, "1", data_dir=data_dir)
            kannel.inject(SPOC_NUMBER, kannel.SHORT_CODE, "1", data_dir=data_dir)
            alert = await poll_json(
                router.client,
                f"/v1/alerts/{alert_id}",
                router.ops,
                lambda a: a["state"] == "acknowledged",
            )
            assert alert["acknowledged_by"] == str(people.spoc)
            assert alert["ack_method"] == "sms"
            # Kannel may deliver the two replies in either order: wait for both.
            await wait_for(lambda: len(replied(answered)) == 2, timeout=20, interval=0.05)
            assert replied(answered) == [204, 204]
            events = await alert_events(
                kafka_bootstrap,
                alert_id,
                until=lambda es: any(e["type"] == "alert.acknowledged" for e in es),
            )
            (acked,) = [e for e in events if e["type"] == "alert.acknowledged"]
            assert acked["data"]["method"] == "sms"
            delivered = [e for e in events if e["type"] == "alert.delivered"]
            assert [e["data"]["channel"] for e in delivered] == ["sms"]
            assert len(kannel.received(data_dir=data_dir)) == before + 1

            # The report is kept on the delivery record too.
            engine = make_engine(router.settings, "router")
            try:
                async with engine.connect() as conn:
                    row = (
                        await conn.execute(
                            sa.select(delivery_records.c.report, delivery_records.c.segments)
                            .where(delivery_records.c.aggregate_id == str(alert_id))
                            .where(delivery_records.c.channel == "sms")
                        )
                    ).one()
            finally:
                await engine.dispose()
            assert tuple(row) == ("delivered", 1)

    # Canary: neither number is in a log line, on the timeline, or on the alerts topic.
    ignored = [e for e in logs if e["event"] == "sms.reply_ignored"]
    assert [e["reason"] for e in ignored] == ["unknown_number"]
    on_topic = await read_topic(
        kafka_bootstrap,
        ALERTS,
        until=lambda rs: len(rs) >= len(events),
        key_filter=lambda k: k == str(alert_id).encode(),
    )
    for number in (SPOC_NUMBER, STRANGER):
        digits = number.lstrip("+")
        assert not [e for e in logs if digits in str(e)], number
        assert digits not in json.dumps(entries)
        assert not [r for r in on_topic if digits.encode() in (r.value or b"")], number
    for path in (data_dir / "logs").iterdir():
        if path.name != "fakesmsc.log":  # the carrier's side
            assert SPOC_NUMBER.lstrip("+") not in path.read_text("utf-8", "replace"), path.name


@postgres_only
async def test_a_handset_failure_is_retried_then_the_next_step_is_notified_at_once(
    database_url: str | None,
    start_router: RouterFactory,
    sinks: Sinks,
    kafka_bootstrap: str,
    gateway: tuple[kannel.KannelEndpoints, Path],
    relay: Relay,
) -> None:
    endpoints, data_dir = gateway
    people = People.fresh()
    number = "+15557650102"
    directory = sms_directory(people, sinks, spoc_channels={"sms": number})

    def handset_failed(target: str) -> str:
        # The carrier's word instead of the fake SMSC's: not delivered to the handset.
        return target.replace("&type=1&", "&type=2&") if "/sms/reports?" in target else target

    async with (
        start_router(
            database_url=database_url,
            people=people,
            directory=directory,
            **sms_settings(endpoints, relay),
        ) as router,
        forwarding(relay, router.client, paths=PATHS, rewrite=handset_failed),
    ):
        sent = notice()
        alert_id = alert_id_for(sent.notice_id)
        await publish(kafka_bootstrap, sent)

        # Sent twice (kannel_handset_attempts = 2), then the backup's step at once
        # instead of after the SPOC's 600 s wait.
        await texts_to(data_dir, number, 2)
        hooks = await wait_sink(
            sinks.webhook,
            lambda items: any(i["path"] == f"/hooks/{people.backup}" for i in items),
        )
        (hook,) = [h for h in hooks if h["path"] == f"/hooks/{people.backup}"]
        assert hook["payload"]["alert_id"] == str(alert_id)
        assert hook["payload"]["purpose"] == "escalation"
        entries = await wait_timeline(
            router, alert_id, lambda es: any(e["kind"] == "escalated" for e in es)
        )
        failed = [e for e in entries if e["kind"] == "delivery_failed"]
        assert [(e["detail"]["final"], e["detail"]["reason"]) for e in failed] == [
            (False, "rejected"),
            (True, "rejected"),
        ]
        assert failed[-1]["detail"]["step_unreachable"] is True
        assert reports(entries).count("failed") == 2
