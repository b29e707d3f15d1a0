"""The SPOC's webhook answers 500 for 20 s during a steady load of notices (real processes).

Intake, router and rumor_control run as real processes on real Kafka and PostgreSQL; the
SPOC's phone is a scripted HTTP receiver in this test that fails every request for 20 s
and then recovers, while the field office submits about 1.5 notices a second. Without any
operator action, every alert must reach the SPOC's phone exactly once after the
recovery (one 2xx answer per delivery id), its e-mail exactly once, nothing may be
dead-lettered, and the timelines of the alerts caught by the outage show the failed
attempts.

The figures printed are observations on this machine, not assertions.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas.topics import DLQ
from services.router.domain import alert_id_for
from tests.e2e.e2e_support import System, running_system, submit_notice, wait_until
from tests.integration.common.delivery.receiver import Receiver
from tests.support.kafka_io import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(300)]

OUTAGE_S = 20.0
LOAD_S = 26.0
RATE_PER_S = 1.5
DRAIN_LIMIT_S = 90.0  # generous: it catches a loss, not a slowdown


async def _submit_steadily(system: System, correlation: str) -> list[str]:
    """Submit notices at RATE_PER_S for LOAD_S; returns their notice ids."""
    notice_ids: list[str] = []
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < LOAD_S:
        _, response = await submit_notice(system, correlation_id=f"{correlation}-{n}")
        assert response.status_code == 201, response.text
        notice_ids.append(response.json()["id"])
        n += 1
        await asyncio.sleep(max(0.0, started + n / RATE_PER_S - time.monotonic()))
    return notice_ids


async def test_a_webhook_failing_for_20_s_loses_and_doubles_nothing(
    pg_database: str, kafka_bootstrap: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    outage_ends = float("inf")

    async def answer(path: str, delivery_id: str, nth: int) -> int:
        return 500 if time.monotonic() < outage_ends else 204

    receiver = await Receiver(answer=answer).start()
    try:
        async with running_system(
            tmp_path,
            kafka_bootstrap=kafka_bootstrap,
            database_url=pg_database,
            unique=unique,
            spoc_wait_s=600,  # no escalation during the test: only the SPOC is involved
            spoc_hook=receiver.url("/spoc"),
            extra_env={
                # Short retry ceilings so the backlog drains soon after the recovery.
                "AVISO_DELIVERY_RETRY_MAX_S": "4",
                "AVISO_DELIVERY_BREAKER_COOLDOWN_S": "3",
            },
        ) as system:
            outage_ends = time.monotonic() + OUTAGE_S
            notice_ids = await _submit_steadily(system, unique("e2e-delivery-faults"))
            load_done = time.monotonic()
            alert_ids = {str(alert_id_for(uuid.UUID(n))) for n in notice_ids}
            await _every_alert_delivered_once(system, receiver, alert_ids)
            drained = time.monotonic()
            await _nothing_dead_lettered(kafka_bootstrap, set(notice_ids) | alert_ids)
            failed_alerts = await _timelines_show_failures(system, alert_ids)
            failed_requests = sum(1 for r in receiver.requests if r.status == 500)
            print(
                f"\ne2e delivery faults: {len(notice_ids)} notices in {LOAD_S:.0f} s, "
                f"{failed_requests} requests answered 500 during the {OUTAGE_S:.0f} s outage, "
                f"{failed_alerts} alerts with failed attempts on their timeline, "
                f"all delivered {drained - load_done:.1f} s after the load ended"
            )
            assert failed_alerts >= 10, "the outage must have caught a good part of the load"
    finally:
        await receiver.stop()


async def _every_alert_delivered_once(
    system: System, receiver: Receiver, alert_ids: set[str]
) -> None:
    def answered() -> Counter[str]:
        return Counter(r.delivery_id for r in receiver.requests if r.status == 204)

    def mails() -> Counter[str]:
        return Counter(
            alert_id
            for m in system.smtp.received
            if m["to"] == [system.cast.spoc_email]
            for alert_id in alert_ids
            if alert_id in m["text"]
        )

    def done() -> bool:
        return len(answered()) >= len(alert_ids) and set(mails()) >= alert_ids

    await wait_until("every SPOC alert at the phone and the mailbox", done, timeout=DRAIN_LIMIT_S)
    await asyncio.sleep(2.0)  # room for a wrongly repeated delivery to show up
    phone = answered()
    assert len(phone) == len(alert_ids), "one webhook delivery id per alert"
    assert set(phone.values()) == {1}, f"delivered twice: {[d for d, n in phone.items() if n > 1]}"
    # Every request of one delivery (the failed ones too) carried the same delivery id.
    per_id = Counter(r.delivery_id for r in receiver.requests)
    assert set(per_id) == set(phone)
    assert set(mails().values()) == {1}, "one e-mail per alert"


async def _nothing_dead_lettered(bootstrap: str, ids: set[str]) -> None:
    def ours(records: list[Any]) -> list[Any]:
        return [r for r in records if any(i.encode() in bytes(r.value or b"") for i in ids)]

    letters = await read_topic(bootstrap, DLQ, until=lambda rs: bool(ours(rs)), timeout=5.0)
    assert ours(letters) == [], "a transient channel failure must never reach the DLQ"


async def _timelines_show_failures(system: System, alert_ids: set[str]) -> int:
    """How many alerts show failed webhook attempts; checks what those entries say."""
    with_failures = 0
    for alert_id in sorted(alert_ids):
        response = await system.client.get(
            f"{system.router_url}/v1/alerts/{alert_id}/timeline", headers=system.auth("ops")
        )
        assert response.status_code == 200, response.text
        entries = response.json()["entries"]
        failed = [e for e in entries if e["kind"] == "delivery_failed"]
        delivered = [e["channel"] for e in entries if e["kind"] == "delivered"]
        assert sorted(delivered) == ["email", "webhook"], (alert_id, delivered)
        if failed:
            with_failures += 1
            assert {e["channel"] for e in failed} == {"webhook"}
            assert {e["detail"]["reason"] for e in failed} <= {"http_5xx", "circuit_open"}
            assert not any(e["detail"]["final"] for e in failed)
    return with_failures
