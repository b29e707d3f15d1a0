"""Delegation windows, frozen snapshots, notice updates and cancellations, the directory API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.router.domain import alert_id_for
from tests.integration.router.conftest import RouterFactory, Sinks
from tests.integration.router.router_support import (
    ManualClock,
    People,
    alert_events,
    cancel,
    directory_json,
    notice,
    poll_json,
    publish,
    update,
    wait_sink,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def test_notice_during_leave_goes_to_the_deputy_and_snapshot_ignores_later_edits(
    pg_database: str, start_router: RouterFactory, sinks: Sinks, kafka_bootstrap: str
) -> None:
    people = People.fresh()
    now = datetime.now(UTC)
    on_leave = [
        {
            "deputy_id": str(people.deputy),
            "starts_at": (now - timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=1)).isoformat(),
            "reason": "annual leave",
        }
    ]
    directory = directory_json(
        people, sinks.webhook, spoc_wait_s=30, backup_wait_s=60, delegations=on_leave
    )
    clock = ManualClock(now)
    async with start_router(
        database_url=pg_database, directory=directory, people=people, clock=clock
    ) as router:
        first = notice()
        alert_id = alert_id_for(first.notice_id)
        await publish(kafka_bootstrap, first)
        hooks = await wait_sink(
            sinks.webhook,
            lambda items: any(i["payload"].get("alert_id") == str(alert_id) for i in items),
        )
        hook = next(h for h in hooks if h["payload"].get("alert_id") == str(alert_id))
        assert hook["path"] == f"/hooks/{people.deputy}"  # the deputy, not the SPOC on leave
        alert = (await router.client.get(f"/v1/alerts/{alert_id}", headers=router.ops)).json()
        assert alert["snapshot"]["spoc_id"] == str(people.deputy)
        assert alert["snapshot"]["designated_spoc_id"] == str(people.spoc)
        assert alert["snapshot"]["delegated"] is True

        # While the alert is open an admin ends the leave and swaps the backup for the SPOC.
        edited = directory_json(people, sinks.webhook, spoc_wait_s=60, backup_wait_s=60)
        edited["policy"]["steps"][1]["person_id"] = str(people.spoc)
        stored = await router.put_directory(edited)
        assert stored["version"] == 2

        # The open alert escalates along its frozen snapshot: to the original backup.
        clock.advance(31)
        escalated = await poll_json(
            router.client,
            f"/v1/alerts/{alert_id}",
            router.ops,
            lambda a: a["state"] == "escalated",
        )
        assert escalated["snapshot"]["directory_version"] == 1
        mails = await wait_sink(
            sinks.smtp,
            lambda items: any(str(alert_id) in m["text"] for m in items),
        )
        assert [m["to"] for m in mails if str(alert_id) in m["text"]] == [["backup@police.example"]]
        events = await alert_events(
            kafka_bootstrap,
            alert_id,
            until=lambda es: any(e["type"] == "alert.escalated" for e in es),
        )
        triggered = next(e["data"] for e in events if e["type"] == "alert.triggered")
        assert triggered["delegated"] is True
        assert triggered["recipient_id"] == str(people.deputy)
        assert next(e["data"] for e in events if e["type"] == "alert.escalated")[
            "recipient_id"
        ] == str(people.backup)

        # The deputy may acknowledge; the SPOC on leave is not among this alert's people.
        spoc = await router.contact(people.spoc)
        refused = await router.client.post(
            f"/v1/alerts/{alert_id}/ack", json={"notice_version": 1}, headers=spoc
        )
        assert refused.status_code == 403
        deputy = await router.contact(people.deputy)
        acked = await router.client.post(
            f"/v1/alerts/{alert_id}/ack", json={"notice_version": 1}, headers=deputy
        )
        assert acked.status_code == 200

        # A new notice now follows the edited directory: the SPOC is back.
        second = notice()
        await publish(kafka_bootstrap, second)
        new_alert = await poll_json(
            router.client,
            f"/v1/alerts/{alert_id_for(second.notice_id)}",
            router.ops,
            lambda a: True,
        )
        assert new_alert["snapshot"]["spoc_id"] == str(people.spoc)
        assert new_alert["snapshot"]["directory_version"] == 2


async def test_update_reopens_acknowledgement_and_cancel_resolves(
    pg_database: str, start_router: RouterFactory, sinks: Sinks, kafka_bootstrap: str
) -> None:
    people = People.fresh()
    directory = directory_json(people, sinks.webhook, spoc_wait_s=60)
    async with start_router(database_url=pg_database, directory=directory, people=people) as router:
        first = notice(summary="Operation planned.")
        alert_id = alert_id_for(first.notice_id)
        await publish(kafka_bootstrap, first, correlation_id="corr-v1")
        await poll_json(
            router.client, f"/v1/alerts/{alert_id}", router.ops, lambda a: a["state"] == "delivered"
        )
        # Intake re-sends the notice under a new message id: still one alert, no new message.
        await publish(kafka_bootstrap, first, correlation_id="corr-v1-again")
        spoc = await router.contact(people.spoc)
        ack = await router.client.post(
            f"/v1/alerts/{alert_id}/ack", json={"notice_version": 1}, headers=spoc
        )
        assert ack.status_code == 200

        await publish(kafka_bootstrap, update(first, 2, summary="Operation moved earlier."))
        reopened = await poll_json(
            router.client,
            f"/v1/alerts/{alert_id}",
            router.ops,
            lambda a: a["notice_version"] == 2 and a["state"] in ("triggered", "delivered"),
        )
        assert reopened["needs_acknowledgement"] is True
        assert reopened["acknowledged_version"] == 1  # the old ack is kept, for version 1
        assert reopened["summary"] == "Operation moved earlier."
        hooks = await wait_sink(
            sinks.webhook,
            lambda items: any(
                i["payload"].get("alert_id") == str(alert_id)
                and i["payload"].get("purpose") == "update"
                for i in items
            ),
        )
        update_hook = next(
            h["payload"]
            for h in hooks
            if h["payload"].get("alert_id") == str(alert_id) and h["payload"]["purpose"] == "update"
        )
        assert update_hook["notice_version"] == 2
        assert "Operation moved earlier." in update_hook["text"]

        stale = await router.client.post(
            f"/v1/alerts/{alert_id}/ack", json={"notice_version": 1}, headers=spoc
        )
        assert stale.status_code == 409
        problem = stale.json()
        assert problem["type"].endswith("/stale-notice-version")
        assert problem["current_version"] == 2
        assert problem["notice_url"].endswith(f"/v1/notices/{first.notice_id}")
        fresh = await router.client.post(
            f"/v1/alerts/{alert_id}/ack", json={"notice_version": 2}, headers=spoc
        )
        assert fresh.status_code == 200
        assert fresh.json()["acknowledged_version"] == 2

        await publish(kafka_bootstrap, cancel(first, 3))
        resolved = await poll_json(
            router.client, f"/v1/alerts/{alert_id}", router.ops, lambda a: a["state"] == "resolved"
        )
        assert resolved["resolution"] == "notice_cancelled"
        assert resolved["needs_acknowledgement"] is False
        # Everyone who was notified hears of the cancellation, on every channel.
        await wait_sink(
            sinks.smtp,
            lambda items: any(
                str(alert_id) in m["text"] and m["subject"].strip().startswith("CANCELLED")
                for m in items
            ),
        )
        hooks = await wait_sink(
            sinks.webhook,
            lambda items: any(
                i["payload"].get("alert_id") == str(alert_id)
                and i["payload"].get("purpose") == "cancel"
                for i in items
            ),
        )
        cancel_hook = next(
            h["payload"]
            for h in hooks
            if h["payload"].get("alert_id") == str(alert_id) and h["payload"]["purpose"] == "cancel"
        )
        assert cancel_hook["ack_url"] is None  # nothing to acknowledge any more
        late = await router.client.post(
            f"/v1/alerts/{alert_id}/ack", json={"notice_version": 3}, headers=spoc
        )
        assert late.status_code == 409

        events = await alert_events(
            kafka_bootstrap,
            alert_id,
            until=lambda es: any(e["type"] == "alert.resolved" for e in es),
        )
        triggers = [e["data"] for e in events if e["type"] == "alert.triggered"]
        assert [(t["cause"], t["notice_version"]) for t in triggers] == [
            ("notice.received", 1),
            ("notice.updated", 2),
        ]
        acks = [e["data"]["notice_version"] for e in events if e["type"] == "alert.acknowledged"]
        assert acks == [1, 2]
        resolved_event = next(e["data"] for e in events if e["type"] == "alert.resolved")
        assert resolved_event["reason"] == "notice_cancelled"
        assert resolved_event["acknowledged"] is True

        timeline = (
            await router.client.get(f"/v1/alerts/{alert_id}/timeline", headers=router.ops)
        ).json()["entries"]
        # Message-level entries aside (a channel may be skipped once acknowledged)...
        messages = ("notified", "delivered", "delivery_skipped")
        kinds = [e["kind"] for e in timeline if e["kind"] not in messages]
        assert kinds == ["triggered", "acknowledged", "reopened", "acknowledged", "resolved"]

        listed = await router.client.get(
            "/v1/alerts", params={"state": "resolved"}, headers=router.ops
        )
        assert str(alert_id) in [a["id"] for a in listed.json()["items"]]
        open_ones = await router.client.get(
            "/v1/alerts", params={"state": "open"}, headers=router.ops
        )
        assert str(alert_id) not in [a["id"] for a in open_ones.json()["items"]]
        bad = await router.client.get("/v1/alerts", params={"state": "nope"}, headers=router.ops)
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")


async def test_directory_is_validated_in_full_and_admin_only(
    pg_database: str, start_router: RouterFactory, sinks: Sinks, tmp_path: Path
) -> None:
    people = People.fresh()
    async with start_router(database_url=pg_database, people=people) as router:
        current = await router.client.get("/v1/directory", headers=router.admin)
        assert current.status_code == 200
        assert current.headers["etag"] == '"v1"'
        assert current.json()["directory"]["spoc"]["person_id"] == str(people.spoc)
        assert (await router.client.get("/v1/directory", headers=router.ops)).status_code == 403

        unreachable = directory_json(people, sinks.webhook)
        unreachable["people"][0]["channels"] = {"phone": "+1 555 0100"}  # the SPOC
        unreachable["policy"]["steps"] = [{"target": "spoc", "wait_s": 60}]
        refused = await router.client.put("/v1/directory", json=unreachable, headers=router.admin)
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        errors = {e["path"]: e["message"] for e in refused.json()["errors"]}
        assert errors["spoc.person_id"] == "the SPOC has no webhook, e-mail or SMS number"

        stale = await router.client.put(
            "/v1/directory",
            json=directory_json(people, sinks.webhook),
            headers={**router.admin, "If-Match": '"v0"'},
        )
        assert stale.status_code == 412
        ok = await router.client.put(
            "/v1/directory",
            json=directory_json(people, sinks.webhook),
            headers={**router.admin, "If-Match": '"v1"'},
        )
        assert ok.status_code == 200
        assert ok.headers["etag"] == '"v2"'
        assert ok.json()["source"] == "api"
