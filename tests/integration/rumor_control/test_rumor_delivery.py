"""Bulletin delivery on the delivery engine: real Kafka, PostgreSQL, HTTP and SMTP receivers.

One app for the module, configured with a Spanish liaison whose webhook fails its first
attempts at every delivery, an English liaison reachable by e-mail only, and a few hundred
more liaisons with webhooks of their own. Every bulletin approved here goes to all of
them. Nothing waits on a wall-clock margin: each test waits for the records to settle.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.topics import BULLETINS, DLQ
from services.rumor_control.domain import delivery_id
from tests.integration.common.delivery.receiver import Receiver
from tests.integration.rumor_control.rumor_harness import RumorApp, payloads, rumor_app_running
from tests.support import infra
from tests.support.kafka_io import read_topic, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FAN_OUT = 300
FAILURES_BEFORE_RECOVERY = 4
FLAKY = uuid.uuid4()
ENGLISH = uuid.uuid4()
FANNED = [uuid.uuid4() for _ in range(FAN_OUT)]
ENGLISH_MAIL = f"english-{ENGLISH.hex[:8]}@example.org"


class Liaisons:
    """The liaisons' webhook receiver: /flaky answers 500 to the first attempts of each
    delivery, then 204 (a receiver down for a while that recovers)."""

    def __init__(self) -> None:
        self.receiver = Receiver(answer=self._answer)
        self._seen: Counter[str] = Counter()

    async def _answer(self, path: str, delivery: str, nth: int) -> int:
        self._seen[delivery] += 1
        if path.startswith("/flaky") and self._seen[delivery] <= FAILURES_BEFORE_RECOVERY:
            return 500
        return 204

    def statuses(self, delivery: uuid.UUID) -> list[int | None]:
        return [r.status for r in self.receiver.requests if r.delivery_id == str(delivery)]


@pytest.fixture(scope="module")
async def liaisons() -> AsyncIterator[Liaisons]:
    hooks = Liaisons()
    await hooks.receiver.start()
    yield hooks
    await hooks.receiver.stop()


@pytest.fixture(scope="module")
async def rc(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    kafka_bootstrap: str,
    liaisons: Liaisons,
) -> AsyncIterator[RumorApp]:
    url = liaisons.receiver.url

    def recipients(department: dict[str, Any]) -> None:
        department["liaisons"] = [
            {"id": str(FLAKY), "name": "Casa Hispana", "language": "es",
             "webhook_url": url(f"/flaky/{FLAKY}")},
            {"id": str(ENGLISH), "name": "Northgate Neighbors", "language": "en",
             "email": ENGLISH_MAIL},
            *({"id": str(i), "name": f"Liaison {n}", "language": "es" if n % 2 else "en",
               "webhook_url": url(f"/fan/{i}")} for n, i in enumerate(FANNED)),
        ]  # fmt: skip

    database = await infra.fresh_database_async(postgres_url)
    try:
        async with rumor_app_running(
            tmp_path_factory.mktemp("rumor-delivery"), database_url=database,
            kafka_bootstrap=kafka_bootstrap, recipients=recipients,
            # Quick retries so a test sees several attempts in well under a second.
            delivery_retry_base_s=0.05, delivery_retry_max_s=0.2,
        ) as running:  # fmt: skip
            yield running
    finally:
        await infra.drop_database_async(database)


async def _draft(rc: RumorApp, place: str, days_ago: int) -> str:
    observed = (datetime.now(UTC) - timedelta(days=days_ago)).replace(microsecond=0)
    report = await rc.report(
        claim="Dicen que la migra está en la tienda", place=place, channel="phone_line",
        observed_at=observed.isoformat(),
    )  # fmt: skip
    assessed = await rc.client.post(
        f"/v1/rumors/{report['rumor_id']}/assess",
        json={"assessment": "False"},
        headers=rc.auth("vetter_a"),
    )
    assert assessed.status_code == 200, assessed.text
    bulletin_id: str = assessed.json()["bulletin_id"]
    return bulletin_id


async def _approve(rc: RumorApp, bulletin_id: str) -> None:
    approved = await rc.client.post(
        f"/v1/bulletins/{bulletin_id}/approve",
        json={"sign_off": ["en", "es"]},
        headers=rc.auth("vetter_b"),
    )
    assert approved.status_code == 200, approved.text


async def _settled(rc: RumorApp, bulletin_id: str, count: int) -> list[dict[str, Any]]:
    """The bulletin's deliveries once all `count` are finished (delivered, failed...)."""
    found: list[dict[str, Any]] = []

    async def finished() -> bool:
        response = await rc.client.get(
            f"/v1/bulletins/{bulletin_id}/deliveries", headers=rc.auth("ops")
        )
        found[:] = response.json()["deliveries"]
        return len(found) == count and all(d["state"] not in ("pending", "sending") for d in found)

    await wait_for(finished, timeout=120, interval=0.3)
    return found


def _id(bulletin_id: str, recipient: uuid.UUID, channel: Any = "webhook") -> uuid.UUID:
    return delivery_id(uuid.UUID(bulletin_id), 1, recipient, channel)


async def test_a_liaison_down_for_a_while_gets_the_bulletin_once_and_the_timeline_shows_it(
    rc: RumorApp, liaisons: Liaisons
) -> None:
    bulletin_id = await _draft(rc, "Northgate", days_ago=11)
    await _approve(rc, bulletin_id)
    deliveries = await _settled(rc, bulletin_id, FAN_OUT + 3)

    flaky = _id(bulletin_id, FLAKY)
    statuses = liaisons.statuses(flaky)
    assert statuses == [500] * FAILURES_BEFORE_RECOVERY + [204], "delivered exactly once"
    (record,) = [d for d in deliveries if d["delivery_id"] == str(flaky)]
    assert (record["state"], record["attempts"]) == ("delivered", FAILURES_BEFORE_RECOVERY + 1)
    assert record["last_failure_reason"] == "http_5xx"
    assert record["outcome"] == "sent"

    steps = [
        s for s in await rc.timeline(bulletin_id) if s["detail"].get("recipient_id") == str(FLAKY)
    ]
    assert [s["action"] for s in steps] == ["delivery_failed"] * FAILURES_BEFORE_RECOVERY + [
        "delivered"
    ]
    failed = [s["detail"] for s in steps[:-1]]
    assert [(d["reason"], d["attempts"], d["final"]) for d in failed] == [
        ("http_5xx", n, False) for n in range(1, FAILURES_BEFORE_RECOVERY + 1)
    ]
    assert all(liaisons.receiver.url("") not in str(d) for d in failed), "never an address"

    events = payloads(
        await read_topic(
            rc.settings.kafka_bootstrap_servers, BULLETINS,
            until=lambda rs: len([r for r in rs if dict(r.headers)["ce_type"]
                                  == b"bulletin.delivery_failed"]) >= FAILURES_BEFORE_RECOVERY,
            key_filter=lambda k: k == bulletin_id.encode(),
        )
    )  # fmt: skip
    failures = [e for e in events if "final" in e]
    assert [(e["recipient_id"], e["reason"], e["final"]) for e in failures] == [
        (str(FLAKY), "http_5xx", False)
    ] * FAILURES_BEFORE_RECOVERY
    # Nothing goes to the DLQ: a receiver that fails is the engine's business.
    dead = await read_topic(
        rc.settings.kafka_bootstrap_servers, DLQ, until=lambda rs: False, timeout=3
    )
    assert not [r for r in dead if bulletin_id.encode() in (r.value or b"")]


async def test_a_headline_with_a_vertical_tab_is_refused_before_any_delivery(
    rc: RumorApp,
) -> None:
    # Edits are cleaned (services/common/text.py): a control character in a headline never
    # reaches an e-mail subject, a feed or a webhook; it is refused where it is typed.
    bulletin_id = await _draft(rc, "Las Palmas", days_ago=12)
    headline = (await rc.bulletin(bulletin_id))["texts"]["en"]["headline"]
    edited = await rc.client.put(
        f"/v1/bulletins/{bulletin_id}/texts/en",
        json={"headline": headline.replace(" ", "\v", 1)},
        headers=rc.auth("vetter_a"),
    )
    assert edited.status_code == 422, edited.text
    assert edited.json()["reason_code"] == "invalid_text"
    assert (await rc.bulletin(bulletin_id))["texts"]["en"]["headline"] == headline


async def test_one_bulletin_fans_out_to_hundreds_of_liaisons_exactly_once_each(
    rc: RumorApp, liaisons: Liaisons
) -> None:
    bulletin_id = await _draft(rc, "Riverside", days_ago=13)
    await _approve(rc, bulletin_id)
    deliveries = await _settled(rc, bulletin_id, FAN_OUT + 3)

    assert {d["state"] for d in deliveries} == {"delivered"}
    expected = {str(_id(bulletin_id, liaison)) for liaison in FANNED}
    answered = Counter(
        r.delivery_id for r in liaisons.receiver.requests if r.delivery_id in expected
    )
    assert set(answered) == expected
    assert set(answered.values()) == {1}, "each liaison exactly once"
