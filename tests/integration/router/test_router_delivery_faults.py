"""Router delivery under receiver faults, on real Kafka, PostgreSQL, HTTP and SMTP.

- A receiver slower than the webhook timeout: every retry carries the same delivery id,
  the message is delivered once, and another recipient's delivery is not held up behind
  it (an ordering: it is answered before the slow one is even retried).
- An alert whose area holds U+2028 (a line separator) reaches the e-mail-only backup.
- Every channel of step 0 failing for good: step 1 is notified at once, although step 0
  waits 600 s.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from deploy.local.common import free_port
from services.router.domain import alert_id_for
from tests.integration.common.delivery.receiver import Receiver
from tests.integration.router.conftest import RouterFactory, Sinks
from tests.integration.router.router_support import (
    People,
    directory_json,
    notice,
    poll_json,
    publish,
    wait_sink,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(180)]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = await Receiver().start()
    yield receiver
    await receiver.stop()


def _person(person_id: uuid.UUID, name: str, **channels: str) -> dict[str, Any]:
    return {"id": str(person_id), "name": name, "channels": channels}


def _directory(spoc: uuid.UUID, people: list[dict[str, Any]], backup: uuid.UUID) -> dict[str, Any]:
    return {
        "people": people,
        "spoc": {"person_id": str(spoc)},
        "policy": {
            "steps": [
                {"target": "spoc", "wait_s": 600},
                {"target": "person", "person_id": str(backup), "wait_s": 600},
            ]
        },
    }


async def test_a_slow_receiver_keeps_its_delivery_id_and_delays_nobody_else(
    pg_database: str, start_router: RouterFactory, receiver: Receiver, kafka_bootstrap: str
) -> None:
    slow, fast, backup = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    happened: list[tuple[str, int, str]] = []

    async def answer(path: str, delivery_id: str, nth: int) -> int:
        happened.append((path, nth, "start"))
        if path == "/slow" and nth <= 2:
            await asyncio.sleep(6.0)  # twice the sender's timeout: it gives up first
        happened.append((path, nth, "end"))
        return 204

    receiver.answer = answer
    people = [
        _person(slow, "Slow phone", webhook_url=receiver.url("/slow")),
        _person(fast, "Fast phone", webhook_url=receiver.url("/fast")),
        _person(backup, "Backup", email="backup@police.example"),
    ]
    async with start_router(
        database_url=pg_database,
        directory=_directory(slow, people, backup),
        webhook_timeout_s=3.0,
        delivery_retry_base_s=0.5,
        delivery_retry_max_s=1.0,
    ) as router:
        first = notice()
        await publish(kafka_bootstrap, first)
        await receiver.wait_until(lambda r: ("/slow", 1, "start") in happened, timeout=30)
        # The fast phone now holds the SPOC role: the next alert goes to it alone.
        await router.put_directory(_directory(fast, people, backup))
        second = notice()
        await publish(kafka_bootstrap, second)
        # The third try is answered at once (the first two hang past the timeout).
        await receiver.wait_until(lambda r: ("/slow", 3, "end") in happened, timeout=60)

        # The other recipient was answered before the slow one was even tried again.
        assert happened.index(("/fast", 1, "end")) < happened.index(("/slow", 2, "start"))
        slow_requests = [q for q in receiver.requests if q.path == "/slow"]
        assert len(slow_requests) == 3
        assert len({q.delivery_id for q in slow_requests}) == 1  # one delivery, one id
        assert [q.path for q in receiver.requests].count("/fast") == 1

        alert_id = alert_id_for(first.notice_id)
        body = await poll_json(
            router.client,
            f"/v1/alerts/{alert_id}/timeline",
            router.ops,
            lambda b: any(e["kind"] == "delivered" for e in b["entries"]),
        )
        failed = [e for e in body["entries"] if e["kind"] == "delivery_failed"]
        assert [e["detail"]["reason"] for e in failed] == ["timeout", "timeout"]
        assert {e["delivery_id"] for e in failed} == {slow_requests[0].delivery_id}
        delivered = [e for e in body["entries"] if e["kind"] == "delivered"]
        assert [e["detail"]["attempts"] for e in delivered] == [3]


async def test_an_area_with_a_line_separator_reaches_the_email_only_backup(
    pg_database: str, start_router: RouterFactory, sinks: Sinks, kafka_bootstrap: str
) -> None:
    people = People.fresh()
    directory = directory_json(people, sinks.webhook, spoc_wait_s=1)
    async with start_router(database_url=pg_database, directory=directory, people=people):
        first = notice().model_copy(update={"area": "District 4\u2028North side"})
        alert_id = alert_id_for(first.notice_id)
        await publish(kafka_bootstrap, first)

        mails = await wait_sink(
            sinks.smtp,
            lambda items: any(
                m["to"] == ["backup@police.example"] and str(alert_id) in m["text"] for m in items
            ),
            timeout=30,
        )
        [mail] = [
            m for m in mails if m["to"] == ["backup@police.example"] and str(alert_id) in m["text"]
        ]
        assert "\u2028" not in mail["subject"]
        assert "District 4 North side" in mail["subject"]
        assert "District 4\u2028North side" in mail["text"]  # the body keeps what was written


async def test_every_channel_of_step_0_failing_notifies_step_1_at_once(
    pg_database: str, start_router: RouterFactory, receiver: Receiver, kafka_bootstrap: str
) -> None:
    spoc, backup = uuid.uuid4(), uuid.uuid4()

    async def answer(path: str, delivery_id: str, nth: int) -> int:
        return 500 if path == "/spoc" else 204

    receiver.answer = answer
    people = [
        _person(spoc, "SPOC", webhook_url=receiver.url("/spoc"), email="spoc@police.example"),
        _person(backup, "Backup", webhook_url=receiver.url("/backup")),
    ]
    async with start_router(
        database_url=pg_database,
        directory=_directory(spoc, people, backup),  # step 0 waits 600 s
        smtp_port=free_port(),  # no relay listens: the SPOC's e-mail cannot go either
        delivery_retry_base_s=0.2,
        delivery_retry_max_s=0.5,
        router_delivery_give_up_s=3.0,
    ) as router:
        first = notice()
        alert_id = alert_id_for(first.notice_id)
        await publish(kafka_bootstrap, first)

        await receiver.wait_until(lambda r: any(q.path == "/backup" for q in r.requests), 60)

        body = await poll_json(
            router.client,
            f"/v1/alerts/{alert_id}/timeline",
            router.ops,
            lambda b: any(e["kind"] == "escalated" for e in b["entries"]),
        )
        finals = [
            e
            for e in body["entries"]
            if e["kind"] == "delivery_failed" and e["detail"]["final"] and e["step"] == 0
        ]
        assert {e["channel"] for e in finals} == {"webhook", "email"}
        assert any(e["detail"].get("step_unreachable") for e in finals)
        [escalated] = [e for e in body["entries"] if e["kind"] == "escalated"]
        assert escalated["step"] == 1
        alert = (await router.client.get(f"/v1/alerts/{alert_id}", headers=router.ops)).json()
        assert (alert["state"], alert["step"], alert["escalation_count"]) == ("escalated", 1, 1)
        # Exactly once: the backup was notified by one escalation, on its one channel.
        await asyncio.sleep(1.0)
        assert len([q for q in receiver.requests if q.path == "/backup"]) == 1
