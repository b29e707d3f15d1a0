"""Two routers and two rumor_control instances; one of each killed with SIGKILL mid-story.

The instances of a service share its consumer groups and its database, so each topic's
three partitions are split between them. Right after the notice's 201, the router
instance delivering the SPOC's alert is killed as soon as it logs its first delivery
(the other channel's message is still to be sent); right after the approval, the
rumor_control instance delivering the bulletin is killed the same way, after its first
of five deliveries. Kafka hands their partitions to the survivors once the consumer
session times out (2 s, the default), and outbox rows a dead relay had
claimed are taken over once the claim expires (5 s here).

The story must still complete, and at the sinks every recipient receives each channel's
message exactly once: one distinct delivery id per recipient and channel, and one raw
receipt - or two receipts sharing that delivery id, which is the one resend a crash
between a send and its commit legitimately causes (printed, not hidden).

The timings printed are observations on this machine, not assertions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.e2e_support import (
    Hops,
    System,
    acknowledge_by_link,
    approve,
    assess_rumor,
    deliveries_by_target,
    duplicates,
    records_with,
    report_rumors,
    running_system,
    spoc_alert,
    standby_bulletin,
    submit_notice,
    wait_until,
)
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]

SESSION_TIMEOUT_MS = 2_000  # the default: failover within about 3 s
CLAIM_TTL_S = 5.0
FAILOVER_S = 60.0  # waits that may span a failover: generous, they catch a loss, not a delay
SETTLE_S = 2.0  # room for a wrongly repeated delivery to show up before counting


async def _kill_first_to_log(
    instances: list[ServiceProcess], match: Callable[[dict[str, Any]], bool], what: str
) -> tuple[ServiceProcess, list[str]]:
    """SIGKILL the first instance to log a line `match` accepts; return that instance and
    the events of the lines `match` accepts that it had logged by then."""

    def first() -> ServiceProcess | None:
        for instance in instances:
            if any(match(r) for r in instance.log_records()):
                return instance
        return None

    victim: ServiceProcess = await wait_until(what, first, timeout=FAILOVER_S, interval=0.005)
    await asyncio.to_thread(victim.kill)
    return victim, [str(r.get("event")) for r in victim.log_records() if match(r)]


def _receipts_of(
    system: System, *, alert_id: str, bulletin_id: str
) -> dict[tuple[str, str], list[str | None]]:
    """Raw receipts at both sinks by (recipient, channel), for the alert and the bulletin.

    Every delivery of this system lands on its own sinks; the story publishes one
    bulletin, so every e-mail to a liaison or the radio desk is one of its deliveries.
    """
    cast = system.cast
    hooks = [
        h
        for h in system.webhook.received
        if isinstance(h["payload"], dict)
        and (
            h["payload"].get("alert_id") == alert_id
            or h["payload"].get("bulletin_id") == bulletin_id
        )
    ]
    community = {cast.spanish_liaison_email, cast.english_liaison_email, cast.radio_desk_email}
    mails = [m for m in system.smtp.received if alert_id in m["text"] or set(m["to"]) & community]
    return deliveries_by_target(system, hooks=hooks, mails=mails)


def _worker(instances: list[ServiceProcess], event: str, **fields: Any) -> list[str]:
    return [i.instance for i in instances if records_with(i.log_records(), event=event, **fields)]


async def test_one_router_and_one_rumor_control_killed_mid_story_nothing_lost_or_doubled(
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
        rumor_controls=2,
        # Longer than the story with both failovers: an escalation here would be a bug.
        spoc_wait_s=90,
        extra_env={
            "AVISO_CONSUMER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "AVISO_OUTBOX_CLAIM_TTL_S": str(CLAIM_TTL_S),
        },
    ) as system:
        await _story_with_crashes(system, unique("e2e-instances"))


async def _story_with_crashes(system: System, correlation_id: str) -> None:
    cast, http = system.cast, system.client
    hops = Hops("e2e instances")

    _, response = await submit_notice(system, correlation_id=correlation_id)
    assert response.status_code == 201, response.text
    notice_id = response.json()["id"]
    hops.mark("notice POST -> 201")

    # The router instance delivering the SPOC's alert dies after its first delivery.
    router_victim, router_seen = await _kill_first_to_log(
        system.routers,
        lambda r: r.get("event") == "alert.delivered" and r.get("notice_id") == notice_id,
        "a router to deliver the SPOC's alert",
    )
    hops.mark(f"router-{router_victim.instance} delivered {len(router_seen)} -> SIGKILL")
    assert router_victim.process is not None
    assert router_victim.process.returncode == -9
    assert len(system.alive(system.routers)) == 1

    hook, _mail = await spoc_alert(system, notice_id, timeout=FAILOVER_S)
    hops.mark("SIGKILL -> SPOC alert on both channels")
    alert_id = hook["payload"]["alert_id"]

    page, done = await acknowledge_by_link(system, hook["payload"]["ack_url"])
    assert page.status_code == 200, page.text
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "acknowledged"
    assert done.json()["acknowledged_by"] == cast.spoc_id
    hops.mark("one-click acknowledgement")

    standby = await standby_bulletin(system, notice_id, timeout=FAILOVER_S)
    assert set(standby["texts"]) == {"en", "es"}
    hops.mark("acknowledged -> standby bulletin drafted")

    reports = await report_rumors(system)
    rumor_ids = {r["rumor_id"] for r in reports}
    assert len(rumor_ids) == 1, reports
    rumor_id = rumor_ids.pop()
    hops.mark("three reports -> one rumor")
    assessed = await assess_rumor(system, rumor_id, assessment="Not confirmed", notice_id=notice_id)
    assert assessed.status_code == 200, assessed.text
    bulletin_id = assessed.json()["bulletin_id"]
    refused = await approve(system, bulletin_id, who="author", sign_off=())
    assert refused.status_code == 403, refused.text
    approved = await approve(system, bulletin_id, who="approver")
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "published"
    hops.mark("assessed, approved by the second vetter")

    # The rumor_control instance delivering our bulletin dies after its first delivery.
    rumor_victim, rumor_seen = await _kill_first_to_log(
        system.rumor_controls,
        lambda r: r.get("event") == "bulletin.delivery" and r.get("bulletin_id") == bulletin_id,
        "a rumor_control instance to deliver the bulletin",
    )
    hops.mark(f"rumor_control-{rumor_victim.instance} delivered {len(rumor_seen)} -> SIGKILL")
    assert rumor_victim.process is not None
    assert rumor_victim.process.returncode == -9
    assert len(system.alive(system.rumor_controls)) == 1

    def all_arrived() -> bool:
        receipts = _receipts_of(system, alert_id=alert_id, bulletin_id=bulletin_id)
        return set(receipts) >= cast.bulletin_targets()

    await wait_until(
        "every liaison and radio desk delivery after the crash",
        all_arrived,
        timeout=FAILOVER_S,
        explain=lambda: str(_receipts_of(system, alert_id=alert_id, bulletin_id=bulletin_id)),
    )
    hops.mark("SIGKILL -> every bulletin delivery at the sinks")

    # The story's ends, through the survivors.
    radio = await http.get(
        f"{system.rumor_url}/v1/bulletins/{bulletin_id}/radio", headers=system.auth("liaison")
    )
    assert radio.status_code == 200, radio.text
    assert radio.text.index("[ESPAÑOL: leer al aire]") < radio.text.index("[ENGLISH]")
    cap = await http.get(f"{system.rumor_url}/feeds/cap/{bulletin_id}/1.xml")
    assert cap.status_code == 200, cap.text
    assert f"urn:aviso:bulletin:{bulletin_id}:1" in cap.text
    atom = await http.get(f"{system.rumor_url}/feeds/bulletins.atom")
    assert f"urn:aviso:bulletin:{bulletin_id}:es" in atom.text
    hops.mark("radio script, CAP entry, Atom feed (survivor)")

    await asyncio.sleep(SETTLE_S)
    receipts = _receipts_of(system, alert_id=alert_id, bulletin_id=bulletin_id)
    expected = {(cast.spoc_id, "webhook"), (cast.spoc_id, "email")} | cast.bulletin_targets()
    assert set(receipts) == expected, f"lost or unexpected deliveries: {receipts}"
    for target, delivery_ids in receipts.items():
        assert len(set(delivery_ids)) == 1, f"{target}: {len(set(delivery_ids))} deliveries"
        assert None not in delivery_ids, f"{target}: a receipt without a delivery id"
        # A crash between a send and its commit resends that very delivery, once.
        assert len(delivery_ids) <= 2, f"{target}: received {len(delivery_ids)} times"
    resent = duplicates(receipts)

    await _assert_timelines(system, alert_id=alert_id, bulletin_id=bulletin_id)

    roles = {
        "alert.triggered": _worker(system.routers, "alert.triggered", notice_id=notice_id),
        "alert.delivered": _worker(system.routers, "alert.delivered", alert_id=alert_id),
        "bulletin.delivery": _worker(
            system.rumor_controls, "bulletin.delivery", bulletin_id=bulletin_id
        ),
    }
    print(hops.report())
    print(
        f"[e2e instances] killed router-{router_victim.instance} after {len(router_seen)} of 2 "
        "SPOC deliveries; "
        f"killed rumor_control-{rumor_victim.instance} after {len(rumor_seen)} of "
        f"{len(cast.bulletin_targets())} bulletin deliveries; instances that logged each "
        f"step: {roles}; receipts per recipient/channel: "
        f"{ {f'{r[:8]}/{c}': len(ids) for (r, c), ids in sorted(receipts.items())} }; "
        f"resent after a crash (same delivery id): {resent or 'none'}"
    )


async def _assert_timelines(system: System, *, alert_id: str, bulletin_id: str) -> None:
    """Both timelines, read from the survivors, show each step once."""
    cast, http = system.cast, system.client

    async def alert_timeline() -> list[dict[str, Any]]:
        response = await http.get(
            f"{system.router_url}/v1/alerts/{alert_id}/timeline", headers=system.auth("ops")
        )
        assert response.status_code == 200, response.text
        entries: list[dict[str, Any]] = response.json()["entries"]
        return entries

    def settled_of(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted(
            (e["recipient_id"], e["channel"])
            for e in entries
            if e["kind"] in ("delivered", "delivery_skipped")
        )

    # Both channels are sent concurrently: the killed router may have sent the other one
    # without recording it. Its lease (AVISO_DELIVERY_LEASE_S) runs out and the survivor
    # takes the record over; if the SPOC acknowledged meanwhile, that one is settled as
    # skipped, not sent again (the sinks above prove it arrived once). So wait for both.
    async def both_settled() -> list[dict[str, Any]] | None:
        entries = await alert_timeline()
        return entries if len(settled_of(entries)) >= 2 else None

    entries = await wait_until("both SPOC channels settled", both_settled, timeout=FAILOVER_S)
    kinds = [e["kind"] for e in entries]
    assert kinds.count("triggered") == 1, kinds
    assert kinds.count("acknowledged") == 1, kinds
    assert "escalated" not in kinds, kinds
    settled = settled_of(entries)
    assert settled == [(cast.spoc_id, "email"), (cast.spoc_id, "webhook")], entries
    assert any(e["kind"] == "delivered" for e in entries), entries

    async def bulletin_timeline() -> list[dict[str, Any]]:
        response = await http.get(
            f"{system.rumor_url}/v1/bulletins/{bulletin_id}/timeline", headers=system.auth("ops")
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    def delivered_of(steps: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return sorted(
            (s["detail"]["recipient_id"], s["detail"]["channel"])
            for s in steps
            if s["action"] == "delivered"
        )

    # A delivery the killed instance sent without recording is recorded by the survivor
    # once the lease has run out: wait for every target's entry.
    async def all_delivered() -> list[dict[str, Any]] | None:
        steps = await bulletin_timeline()
        return steps if len(delivered_of(steps)) >= len(cast.bulletin_targets()) else None

    steps = await wait_until("every bulletin delivery recorded", all_delivered, timeout=FAILOVER_S)
    actions = [s["action"] for s in steps]
    assert actions.count("approved") == actions.count("published") == 1, actions
    delivered_steps = delivered_of(steps)
    assert delivered_steps == sorted(cast.bulletin_targets()), delivered_steps
