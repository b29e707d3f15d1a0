"""Several router instances, crashes and restarts: one alert, one delivery, one escalation.

The two-instance test runs routers as real processes (`aviso serve router`) sharing one
PostgreSQL database and one set of consumer groups, and SIGKILLs one of them while it
works through a stream of notices.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from schemas.topics import ALERTS
from services.common.auth import Role
from services.common.db import make_engine
from services.router.cli import alert_app
from services.router.config import RouterSettings
from services.router.domain import alert_id_for
from tests.integration.router.conftest import RouterFactory, Sinks
from tests.integration.router.router_support import (
    LINK_SECRET,
    WEBHOOK_SECRET,
    ManualClock,
    People,
    directory_json,
    notice,
    poll_json,
    position_groups_at_end,
    publish,
    wait_sink,
)
from tests.support.apps import issue_test_token
from tests.support.kafka_io import read_topic, wait_for
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _scalar_rows(settings: RouterSettings, query: str) -> list[Any]:
    engine = make_engine(settings, "router")
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(sa.text(query)))
    finally:
        await engine.dispose()


async def test_two_instances_one_killed_mid_stream_alert_deliver_and_escalate_once(
    pg_database: str,
    kafka_bootstrap: str,
    sinks: Sinks,
    make_settings: Callable[..., Any],
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    people = People.fresh()
    directory_file = tmp_path / "directory.yaml"
    directory_file.write_text(
        yaml.safe_dump(directory_json(people, sinks.webhook, spoc_wait_s=2, backup_wait_s=2))
    )
    prefix = unique("router-pair")
    await position_groups_at_end(kafka_bootstrap, prefix)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": pg_database,
        "AVISO_VAR_DIR": str(tmp_path / "var"),
        "AVISO_ROUTER_GROUP_PREFIX": prefix,
        "AVISO_ROUTER_DIRECTORY_FILE": str(directory_file),
        "AVISO_SMTP_PORT": str(sinks.smtp.port),
        "AVISO_WEBHOOK_SECRETS": json.dumps([WEBHOOK_SECRET.decode()]),
        "AVISO_LINK_SECRET": LINK_SECRET,
        "AVISO_ROUTER_TIMER_POLL_INTERVAL_S": "0.25",
        "AVISO_CONSUMER_BACKOFF_S": "0.05",
        "AVISO_SHUTDOWN_GRACE_S": "5",
    }
    settings: RouterSettings = make_settings(RouterSettings, database_url=pg_database)
    first = ServiceProcess("router", env, tmp_path / "logs", instance="a")
    second = ServiceProcess("router", env, tmp_path / "logs", instance="b")
    await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
    try:
        batch_one = [notice() for _ in range(15)]
        batch_two = [notice() for _ in range(5)]
        notices = batch_one + batch_two
        alert_ids = {alert_id_for(n.notice_id) for n in notices}
        wanted = ",".join(f"'{n.notice_id}'" for n in notices)
        await publish(kafka_bootstrap, *batch_one, correlation_id="corr-pair")

        async def alerts_so_far() -> int:
            rows = await _scalar_rows(
                settings, f"SELECT count(*) FROM alerts WHERE notice_id IN ({wanted})"
            )
            return int(rows[0][0])

        our_notices = {str(n.notice_id) for n in notices}

        def opened_by(instance: ServiceProcess) -> list[dict[str, Any]]:
            return [
                r
                for r in instance.log_records()
                if r.get("event") == "alert.triggered" and r.get("notice_id") in our_notices
            ]

        # Kill whichever instance opens one of our alerts first: it is mid-stream by then.
        # (How many instances get notices depends on the topic's partition count.)
        await wait_for(lambda: opened_by(first) or opened_by(second), timeout=30, interval=0.01)
        victim, survivor = (first, second) if opened_by(first) else (second, first)
        await asyncio.to_thread(victim.kill)  # SIGKILL: nothing gets to clean up
        killed_at = await alerts_so_far()
        opened_by_victim = len(opened_by(victim))
        await publish(kafka_bootstrap, *batch_two, correlation_id="corr-pair")

        # The survivor takes over the dead instance's partitions and its timers.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = await _scalar_rows(
                settings,
                "SELECT count(*) FROM alerts WHERE state = 'unacknowledged_exhausted' "
                f"AND notice_id IN ({wanted})",
            )
            if rows[0][0] == len(notices):
                break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError(f"not all alerts exhausted in time:\n{survivor.tail()}")
        # Requests the dead instance had not sent wait for the group to notice it is gone.
        wanted_ids = {str(a) for a in alert_ids}

        def ours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                i
                for i in items
                if i.get("payload", {}).get("alert_id") in wanted_ids
                or any(a in i.get("text", "") for a in wanted_ids)
            ]

        await wait_sink(sinks.webhook, lambda items: len(ours(items)) >= len(notices), 40)
        await wait_sink(sinks.smtp, lambda items: len(ours(items)) >= 2 * len(notices), 40)
        await asyncio.sleep(1.5)  # room for a wrongly repeated delivery to show up

        per_notice = await _scalar_rows(
            settings,
            f"SELECT notice_id, count(*) FROM alerts WHERE notice_id IN ({wanted}) "
            "GROUP BY notice_id",
        )
        assert len(per_notice) == len(notices)
        assert all(count == 1 for _, count in per_notice), "one alert per notice"

        ids = ",".join(f"'{a}'" for a in alert_ids)
        fired = await _scalar_rows(
            settings,
            f"SELECT alert_id, kind, count(*) FROM alert_timeline WHERE alert_id IN ({ids}) "
            "AND kind IN ('escalated', 'exhausted') GROUP BY alert_id, kind",
        )
        assert Counter((kind, count) for _, kind, count in fired) == Counter(
            {("escalated", 1): len(notices), ("exhausted", 1): len(notices)}
        ), "each escalation fired exactly once"

        # At the sinks: per alert, one SPOC webhook, one SPOC e-mail, one backup e-mail,
        # counted by distinct delivery id. A send the victim made in the instant before
        # SIGKILL, with no time to record it, is made again by the survivor under the same
        # delivery id (the receiver's idempotency key): at most that one repeat, never a
        # second id for the same alert and channel.
        hooks = ours(sinks.webhook.received)
        mails = ours(sinks.smtp.received)
        spoc_mails = [m for m in mails if m["to"] == ["spoc@police.example"]]
        backup_mails = [m for m in mails if m["to"] == ["backup@police.example"]]
        for what, received in (("webhook", hooks), ("spoc mail", spoc_mails),
                               ("backup mail", backup_mails)):  # fmt: skip
            per_alert = {
                alert: {r["delivery_id"] for r in received if alert in json.dumps(r)}
                for alert in wanted_ids
            }
            assert all(len(ids) == 1 for ids in per_alert.values()), (what, per_alert)
            receipts = Counter(r["delivery_id"] for r in received)
            assert max(receipts.values()) <= 2, (what, receipts)
        assert all(h["signature_valid"] for h in hooks)

        # Each alert.escalated was emitted once (one outbox row per alert; the relay deletes
        # it once Kafka has it) and reached the topic; a relay crash may republish a row,
        # but always under its one message id.
        def escalations(records: list[Any]) -> dict[str, set[str]]:
            by_alert: dict[str, set[str]] = {}
            for record in records:
                headers = {name: value.decode() for name, value in record.headers}
                if headers["ce_type"] == "alert.escalated":
                    by_alert.setdefault(record.key.decode(), set()).add(headers["ce_id"])
            return by_alert

        records = await read_topic(
            kafka_bootstrap,
            ALERTS,
            until=lambda rs: len(escalations(rs)) >= len(notices),
            key_filter=lambda k: k is not None and uuid.UUID(k.decode()) in alert_ids,
        )
        emitted = escalations(records)
        assert sorted(len(message_ids) for message_ids in emitted.values()) == [1] * len(notices)

        print(
            f"killed instance {victim.instance} when {killed_at} of our alerts existed "
            f"({opened_by_victim} opened by it)"
        )

        # The CLI against the surviving instance: list, then a late acknowledgement.
        ops = await issue_test_token(settings, Role.OPS, "ops")
        contact = await issue_test_token(settings, Role.CONTACT, "spoc", str(people.spoc))
        runner = CliRunner()
        listed = await asyncio.to_thread(
            runner.invoke,
            alert_app,
            [
                *("list", "--url", survivor.url, "--token", ops),
                *("--state", "unacknowledged_exhausted", "--limit", "500"),
            ],
        )
        assert listed.exit_code == 0, listed.output
        some = alert_id_for(notices[0].notice_id)
        assert str(some) in listed.output
        acked = await asyncio.to_thread(
            runner.invoke,
            alert_app,
            ["ack", str(some), "--url", survivor.url, "--version", "1", "--comment", "late"],
            env={"AVISO_TOKEN": contact},
        )
        assert acked.exit_code == 0, acked.output
        assert f"acknowledged {some} version 1" in acked.output
        refused = await asyncio.to_thread(
            runner.invoke,
            alert_app,
            ["ack", str(some), "--url", survivor.url, "--token", ops, "-y"],
        )
        assert refused.exit_code == 1
    finally:
        # Whichever is still running stops gracefully; the victim is already dead.
        await asyncio.gather(
            asyncio.to_thread(first.terminate), asyncio.to_thread(second.terminate)
        )


async def test_timers_pending_across_a_restart_fire_on_time(
    database_url: str | None, start_router: RouterFactory, sinks: Sinks, kafka_bootstrap: str
) -> None:
    backend = "postgres" if database_url else "sqlite"
    people = People.fresh()
    # One clock for both lives of the router: time moves only when the test says so.
    clock = ManualClock()
    directory = directory_json(people, sinks.webhook, spoc_wait_s=3.0, backup_wait_s=1.0)
    async with start_router(
        database_url=database_url, directory=directory, people=people, clock=clock
    ) as router:
        first = notice()
        alert_id = alert_id_for(first.notice_id)
        await publish(kafka_bootstrap, first)
        before = await poll_json(
            router.client, f"/v1/alerts/{alert_id}", router.ops, lambda a: a["state"] == "delivered"
        )
        prefix = router.prefix
    # Stopped: the timer lives on in the database only. Start a new router on it.
    deadline = datetime.fromisoformat(before["next_escalation_at"])
    assert deadline == clock() + timedelta(seconds=3)
    async with start_router(
        database_url=database_url, people=people, prefix=prefix, put_directory=False, clock=clock
    ) as restarted:
        url = f"/v1/alerts/{alert_id}"
        clock.advance(3.1)  # the SPOC's wait ran out while the router was down
        await poll_json(restarted.client, url, restarted.ops, lambda a: a["escalation_count"] == 1)
        clock.advance(1.0)  # the backup's wait too
        escalated = await poll_json(
            restarted.client,
            url,
            restarted.ops,
            lambda a: a["state"] == "unacknowledged_exhausted",
        )
        assert escalated["escalation_count"] == 1
        timeline = (
            await restarted.client.get(f"/v1/alerts/{alert_id}/timeline", headers=restarted.ops)
        ).json()["entries"]
        fired = next(e for e in timeline if e["kind"] == "escalated")
        lateness = (datetime.fromisoformat(fired["at"]) - deadline).total_seconds()
        assert lateness == pytest.approx(0.1), lateness
        assert fired["detail"]["lateness_ms"] == 100.0
        exhausted = next(e for e in timeline if e["kind"] == "exhausted")
        gap = datetime.fromisoformat(exhausted["at"]) - datetime.fromisoformat(fired["at"])
        assert gap == timedelta(seconds=1)
        print(f"{backend}: timer fired {lateness * 1000:.1f} ms after its deadline, post-restart")
        await wait_sink(
            sinks.smtp,
            lambda items: any(
                str(alert_id) in m["text"] and m["to"] == ["backup@police.example"] for m in items
            ),
        )


async def test_directory_file_is_applied_only_when_it_changes(
    start_router: RouterFactory, sinks: Sinks, tmp_path: Path
) -> None:
    people = People.fresh()
    path = tmp_path / "directory.yaml"
    path.write_text(yaml.safe_dump(directory_json(people, sinks.webhook)))
    common: dict[str, Any] = {
        "database_url": None,
        "people": people,
        "put_directory": False,
        "router_directory_file": path,
    }

    async def version(router: Any) -> dict[str, Any]:
        body = (await router.client.get("/v1/directory", headers=router.admin)).json()
        return {"version": body["version"], "source": body["source"]}

    async with start_router(**common) as router:
        prefix = router.prefix
        assert await version(router) == {"version": 1, "source": "file"}
        edited = directory_json(people, sinks.webhook, spoc_wait_s=120)
        await router.put_directory(edited)
    async with start_router(prefix=prefix, **common) as router:
        # Same file: the API edit stays in force across the restart.
        assert await version(router) == {"version": 2, "source": "api"}
    path.write_text(yaml.safe_dump(directory_json(people, sinks.webhook, spoc_wait_s=30)))
    async with start_router(prefix=prefix, **common) as router:
        assert await version(router) == {"version": 3, "source": "file"}
    path.write_text("people: []\nspoc: {person_id: nobody}\n")
    async with start_router(prefix=prefix, **common) as router:
        # A broken file is reported and ignored; the stored directory keeps working.
        assert await version(router) == {"version": 3, "source": "file"}
    assert os.environ.get("AVISO_ROUTER_DIRECTORY_FILE") is None
