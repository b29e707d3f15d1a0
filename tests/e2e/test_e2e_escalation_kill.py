"""Two routers fire 40 escalation timers; one is killed with SIGKILL while they fire.

Forty notices are submitted at once; nobody acknowledges, so about `WAIT_S` later the
40 alerts' timers come due together and both routers fire them in small batches
(`AVISO_ROUTER_TIMER_BATCH_SIZE=4`, so the firing spans many transactions of both). As
soon as one router logs its first escalation of ours, it is killed. Its open batch
rolls back with its connection; the survivor fires what is left, takes over the
delivery work the dead one held (after its 2 s leases and session) and the backup is
reached by e-mail for every alert.

At the SMTP sink, every alert's backup receives one delivery id on its channel (the
backup has e-mail only), and the timelines show each escalation exactly once. A crash
between a send and its commit may legitimately resend that very delivery (same id):
printed, not hidden, as in test_e2e_instances.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from services.router.domain import alert_id_for
from tests.e2e.e2e_support import (
    Hops,
    System,
    duplicates,
    running_system,
    submit_notice,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]

ALERTS = 40
WAIT_S = 20.0  # longer than submitting 40 notices and alerting their SPOC, on a slow day
FAILOVER_S = 120.0  # waits spanning the failover: generous, they catch a loss, not a delay
SETTLE_S = 3.0  # room for a wrongly repeated delivery to show up before counting


def _backup_mails(system: System, alert_ids: set[str]) -> dict[str, list[str | None]]:
    """Delivery ids of the e-mails that reached the backup, by alert."""
    found: dict[str, list[str | None]] = {}
    for mail in system.smtp.received:
        if system.cast.backup_email not in mail["to"]:
            continue
        for alert_id in alert_ids:
            if alert_id in mail["text"]:
                found.setdefault(alert_id, []).append(mail["delivery_id"])
    return found


async def test_router_killed_while_40_escalations_fire_every_backup_notified_once(
    pg_database: str,
    kafka_bootstrap: str,
    tmp_path: Path,
    unique: Callable[[str], str],
) -> None:
    async with running_system(
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        database_url=pg_database,
        unique=unique,
        routers=2,
        rumor_controls=0,
        spoc_wait_s=WAIT_S,
        extra_env={"AVISO_ROUTER_TIMER_BATCH_SIZE": "4"},
    ) as system:
        hops = Hops("e2e escalation kill")
        correlation = unique("e2e-escalation-kill")
        submitted = await asyncio.gather(
            *(submit_notice(system, correlation_id=f"{correlation}-{n}") for n in range(ALERTS))
        )
        assert all(r.status_code == 201 for _, r in submitted), [r.text for _, r in submitted]
        alert_ids = {str(alert_id_for(uuid.UUID(r.json()["id"]))) for _, r in submitted}
        hops.mark(f"{ALERTS} notices POSTed")

        def first_to_escalate() -> object:
            for router in system.routers:
                for record in router.log_records():
                    if record.get("event") == "alert.escalated" and (
                        record.get("alert_id") in alert_ids
                    ):
                        return router
            return None

        victim = await wait_until(
            "a router to fire an escalation of ours",
            first_to_escalate,
            timeout=WAIT_S + FAILOVER_S,
            interval=0.005,
        )
        await asyncio.to_thread(victim.kill)
        assert victim.process is not None
        assert victim.process.returncode == -9
        assert len(system.alive(system.routers)) == 1
        fired_by_victim = {
            r["alert_id"]
            for r in victim.log_records()
            if r.get("event") == "alert.escalated" and r.get("alert_id") in alert_ids
        }
        hops.mark(f"router-{victim.instance} escalated {len(fired_by_victim)} -> SIGKILL")

        await wait_until(
            f"the backup's e-mail for all {ALERTS} alerts",
            lambda: set(_backup_mails(system, alert_ids)) == alert_ids,
            timeout=FAILOVER_S,
            explain=lambda: f"have {len(_backup_mails(system, alert_ids))} of {ALERTS}",
        )
        hops.mark("SIGKILL -> every backup notified")
        await asyncio.sleep(SETTLE_S)

        mails = _backup_mails(system, alert_ids)
        assert set(mails) == alert_ids
        for alert_id, delivery_ids in mails.items():
            assert None not in delivery_ids, f"{alert_id}: a receipt without a delivery id"
            assert len(set(delivery_ids)) == 1, f"{alert_id}: {len(set(delivery_ids))} deliveries"
            # A crash between a send and its commit resends that very delivery, once.
            assert len(delivery_ids) <= 2, f"{alert_id}: received {len(delivery_ids)} times"

        url = system.router_url
        for alert_id in sorted(alert_ids):
            response = await system.client.get(
                f"{url}/v1/alerts/{alert_id}/timeline", headers=system.auth("ops")
            )
            assert response.status_code == 200, response.text
            kinds = [e["kind"] for e in response.json()["entries"]]
            assert kinds.count("escalated") == 1, (alert_id, kinds)
        hops.mark("timelines: one escalation each")

        survivor = system.alive(system.routers)[0]
        fired_by_survivor = {
            r["alert_id"]
            for r in survivor.log_records()
            if r.get("event") == "alert.escalated" and r.get("alert_id") in alert_ids
        }
        print(hops.report())
        print(
            f"[e2e escalation kill] router-{victim.instance} escalated {len(fired_by_victim)} "
            f"before SIGKILL, router-{survivor.instance} {len(fired_by_survivor)}; "
            f"resent after the crash (same delivery id): "
            f"{duplicates({(a, 'email'): ids for a, ids in mails.items()}) or 'none'}"
        )
        assert fired_by_victim.isdisjoint(fired_by_survivor), "an escalation logged twice"
