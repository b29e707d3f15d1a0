"""Router end to end in-process: notice in, alert out over Kafka to real sinks, acknowledged.

Real Kafka (the contract's topics), real PostgreSQL (and SQLite for the first test), real
webhook and SMTP servers. Tests of escalation run the router on a `ManualClock` and move
it past each wait, so no assertion depends on how fast a loaded machine fires a timer.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import structlog

from services.router.domain import alert_id_for
from tests.integration.router.conftest import RouterFactory, Sinks
from tests.integration.router.router_support import (
    ManualClock,
    People,
    alert_events,
    directory_json,
    notice,
    poll_json,
    publish,
    wait_sink,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def for_alert(alert_id: uuid.UUID) -> Any:
    return lambda items: [i for i in items if i.get("payload", {}).get("alert_id") == str(alert_id)]


def mails_about(alert_id: uuid.UUID, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in items if str(alert_id) in m["text"]]


async def test_notice_reaches_the_spoc_by_webhook_and_email_with_its_correlation_id(
    database_url: str | None, start_router: RouterFactory, sinks: Sinks, kafka_bootstrap: str
) -> None:
    async with start_router(database_url=database_url) as router:
        drill = notice(status="Exercise")
        alert_id = alert_id_for(drill.notice_id)
        await publish(kafka_bootstrap, drill, correlation_id="corr-intake-request-1")

        hooks = await wait_sink(sinks.webhook, lambda items: bool(for_alert(alert_id)(items)))
        mails = await wait_sink(sinks.smtp, lambda items: bool(mails_about(alert_id, items)))
        hook = for_alert(alert_id)(hooks)[0]
        mail = mails_about(alert_id, mails)[0]

        # The SPOC's own webhook, signed with the shared scheme, marked DRILL, carrying the
        # correlation id of the intake request that created the notice.
        assert hook["path"] == f"/hooks/{router.people.spoc}"
        assert hook["signature_valid"] is True
        payload = hook["payload"]
        assert payload["correlation_id"] == "corr-intake-request-1"
        assert payload["drill"] is True
        assert payload["headline"].startswith("DRILL ")
        assert payload["text"].startswith("DRILL")
        assert payload["urgency"] == "high"  # starts within the 2 h horizon
        assert payload["ack_url"].startswith("http://router.test/ack?token=")
        assert payload["notice_url"] == f"http://intake.test/v1/notices/{drill.notice_id}"
        assert mail["to"] == ["spoc@police.example"]
        assert mail["subject"].startswith("DRILL ")
        assert "Reference: corr-intake-request-1" in mail["text"]
        assert mail["delivery_id"] != hook["delivery_id"]

        # alert.triggered and one alert.delivered per channel, all with the correlation id.
        events = await alert_events(
            kafka_bootstrap,
            alert_id,
            until=lambda es: sum(e["type"] == "alert.delivered" for e in es) >= 2,
        )
        kinds = [e["type"] for e in events]
        assert kinds.count("alert.triggered") == 1
        assert sorted(e["data"]["channel"] for e in events if e["type"] == "alert.delivered") == [
            "email",
            "webhook",
        ]
        assert {e["correlation_id"] for e in events} == {"corr-intake-request-1"}
        triggered = next(e["data"] for e in events if e["type"] == "alert.triggered")
        assert triggered["recipient_id"] == str(router.people.spoc)
        assert triggered["delegated"] is False

        alert = await poll_json(
            router.client,
            f"/v1/alerts/{alert_id}",
            router.ops,
            lambda a: a["state"] == "delivered",
        )
        assert alert["drill"] is True
        assert alert["needs_acknowledgement"] is True
        timeline = (
            await router.client.get(f"/v1/alerts/{alert_id}/timeline", headers=router.ops)
        ).json()
        delivered = [e for e in timeline["entries"] if e["kind"] == "delivered"]
        assert sorted(e["channel"] for e in delivered) == ["email", "webhook"]
        assert timeline["entries"][0]["kind"] == "triggered"


async def test_unacknowledged_alert_escalates_to_the_backup_then_repeats_then_exhausts(
    postgres_url: str,
    pg_database: str,
    start_router: RouterFactory,
    sinks: Sinks,
    kafka_bootstrap: str,
) -> None:
    people = People.fresh()
    clock = ManualClock()
    directory = directory_json(people, sinks.webhook, spoc_wait_s=1.0, backup_wait_s=1.0, repeat=1)
    async with start_router(
        database_url=pg_database, directory=directory, people=people, clock=clock
    ) as router:
        with structlog.testing.capture_logs() as logs:
            first = notice(starts_in=timedelta(hours=6))
            alert_id = alert_id_for(first.notice_id)
            await publish(kafka_bootstrap, first, correlation_id="corr-escalation")
            url = f"/v1/alerts/{alert_id}"
            alert = await poll_json(router.client, url, router.ops, lambda a: a["step"] == 0)
            # Each wait runs out; the timer fires 0.25 s late (the clock moves past it).
            for fired in range(1, 5):
                clock.advance(1.25)
                alert = await poll_json(
                    router.client,
                    url,
                    router.ops,
                    lambda a, n=fired: (
                        a["escalation_count"] == n or a["state"] == "unacknowledged_exhausted"
                    ),
                )
        assert alert["state"] == "unacknowledged_exhausted"
        assert alert["urgency"] == "normal"  # starts in 6 h, beyond the 2 h horizon
        assert alert["escalation_count"] == 3
        assert alert["needs_acknowledgement"] is True  # a late ack is still welcome

        timeline = (
            await router.client.get(f"/v1/alerts/{alert_id}/timeline", headers=router.ops)
        ).json()["entries"]
        fired_entries = [
            e for e in timeline if e["kind"] in ("triggered", "escalated", "exhausted")
        ]
        assert [(e["kind"], e["repeat"], e["step"], e["recipient_id"]) for e in fired_entries] == [
            ("triggered", 0, 0, str(people.spoc)),
            ("escalated", 0, 1, str(people.backup)),
            ("escalated", 1, 0, str(people.spoc)),
            ("escalated", 1, 1, str(people.backup)),
            ("exhausted", 1, 1, None),
        ]
        # Each step fired when the clock passed its deadline, and the next wait counted
        # from when it really fired (not from the deadline): 1.25 s apart, 250 ms late.
        times = [datetime.fromisoformat(e["at"]) for e in fired_entries]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert gaps == [1.25, 1.25, 1.25, 1.25], gaps
        lateness = [e["detail"]["lateness_ms"] for e in fired_entries if e["kind"] == "escalated"]
        assert lateness == [250.0, 250.0, 250.0], lateness

        # The backup heard twice by e-mail; the SPOC's webhook had the alert and the repeat.
        mails = await wait_sink(
            sinks.smtp,
            lambda items: (
                len([m for m in mails_about(alert_id, items) if "backup" in m["to"][0]]) >= 2
            ),
        )
        assert all(
            # strip(): Python's e-mail policy folds a long Subject before its first word.
            m["subject"].strip().startswith("ESCALATED")
            for m in mails_about(alert_id, mails)
            if m["to"] == ["backup@police.example"]
        )
        hooks = await wait_sink(sinks.webhook, lambda items: len(for_alert(alert_id)(items)) >= 2)
        assert [h["payload"]["purpose"] for h in for_alert(alert_id)(hooks)] == [
            "alert",
            "escalation",
        ]

        events = await alert_events(
            kafka_bootstrap,
            alert_id,
            until=lambda es: sum(e["type"] == "alert.escalated" for e in es) >= 3,
        )
        escalated = [e for e in events if e["type"] == "alert.escalated"]
        assert [e["data"]["escalation_count"] for e in escalated] == [1, 2, 3]
        assert {e["correlation_id"] for e in escalated} == {"corr-escalation"}

        exhausted = [entry for entry in logs if entry["event"] == "alert.exhausted"]
        assert len(exhausted) == 1
        assert exhausted[0]["log_level"] == "error"
        assert exhausted[0]["alert_id"] == str(alert_id)
        metrics = (await router.client.get("/metrics")).text
        assert "aviso_router_alerts_exhausted_total" in metrics
        assert "aviso_router_escalations_total" in metrics


async def test_acknowledging_stops_escalation_and_twice_is_harmless(
    pg_database: str, start_router: RouterFactory, sinks: Sinks, kafka_bootstrap: str
) -> None:
    people = People.fresh()
    clock = ManualClock()
    directory = directory_json(people, sinks.webhook, spoc_wait_s=60, backup_wait_s=60)
    async with start_router(
        database_url=pg_database, directory=directory, people=people, clock=clock
    ) as router:
        first = notice()
        alert_id = alert_id_for(first.notice_id)
        await publish(kafka_bootstrap, first)
        await poll_json(
            router.client, f"/v1/alerts/{alert_id}", router.ops, lambda a: a["state"] == "delivered"
        )
        spoc = await router.contact(people.spoc)
        stranger = await router.contact(uuid.uuid4())

        refused = await router.client.post(
            f"/v1/alerts/{alert_id}/ack", json={"notice_version": 1}, headers=stranger
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        by_ops = await router.client.post(
            f"/v1/alerts/{alert_id}/ack", json={"notice_version": 1}, headers=router.ops
        )
        assert by_ops.status_code == 403

        acked = await router.client.post(
            f"/v1/alerts/{alert_id}/ack",
            json={"notice_version": 1, "comment": "Read; calling the field office."},
            headers=spoc,
        )
        assert acked.status_code == 200, acked.text
        assert acked.json()["state"] == "acknowledged"
        assert acked.json()["already_acknowledged"] is False
        again = await router.client.post(
            f"/v1/alerts/{alert_id}/ack", json={"notice_version": 1}, headers=spoc
        )
        assert again.status_code == 200
        assert again.json()["already_acknowledged"] is True
        unknown = await router.client.post(
            f"/v1/alerts/{alert_id}/ack", json={"notice_version": 2}, headers=spoc
        )
        assert unknown.status_code == 409

        # Past the SPOC's wait, nothing may escalate. An unacknowledged control alert, due
        # at the same moment, proves the timer worker ran after the clock moved on.
        control = notice()
        control_id = alert_id_for(control.notice_id)
        await publish(kafka_bootstrap, control)
        await poll_json(
            router.client, f"/v1/alerts/{control_id}", router.ops, lambda a: a["step"] == 0
        )
        clock.advance(61)
        await poll_json(
            router.client,
            f"/v1/alerts/{control_id}",
            router.ops,
            lambda a: a["state"] == "escalated",
        )
        alert = (await router.client.get(f"/v1/alerts/{alert_id}", headers=router.ops)).json()
        assert alert["state"] == "acknowledged"
        assert alert["escalation_count"] == 0
        assert alert["next_escalation_at"] is None
        assert alert["acknowledged_by"] == str(people.spoc)
        assert alert["ack_method"] == "api"
        assert not [
            m for m in mails_about(alert_id, sinks.smtp.received) if m["to"][0].startswith("backup")
        ]
        events = await alert_events(
            kafka_bootstrap,
            alert_id,
            until=lambda es: any(e["type"] == "alert.acknowledged" for e in es),
        )
        acks = [e["data"] for e in events if e["type"] == "alert.acknowledged"]
        assert len(acks) == 1, "a second acknowledgement emits nothing"
        assert acks[0]["acknowledged_by"] == str(people.spoc)
        assert acks[0]["method"] == "api"
        assert "alert.escalated" not in [e["type"] for e in events]

        timeline = (
            await router.client.get(f"/v1/alerts/{alert_id}/timeline", headers=router.ops)
        ).json()["entries"]
        ack_entry = next(e for e in timeline if e["kind"] == "acknowledged")
        assert ack_entry["detail"]["comment"] == "[withheld]"  # ops do not read free text
        as_contact = (
            await router.client.get(f"/v1/alerts/{alert_id}/timeline", headers=spoc)
        ).json()["entries"]
        assert (
            next(e for e in as_contact if e["kind"] == "acknowledged")["detail"]["comment"]
            == "Read; calling the field office."
        )
