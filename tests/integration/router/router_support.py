"""Shared pieces of the router's integration tests: notices, directories, sinks, groups.

Router consumes the real `aviso.notices.v1` (its notifications leave through its own
delivery engine, not Kafka). Each test app gets a consumer group of its own
(`router_group_prefix`), positioned at the end of the topic before it starts, so it
neither steals another test's messages nor replays the history of every earlier run.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from deploy.local.kafka import ensure_topics
from deploy.local.sinks import SmtpSink, WebhookSink
from schemas.base import Status, version_ref
from schemas.notices import NoticeCancelled, NoticeReceived, NoticeUpdated
from schemas.topics import ALERTS, NOTICES
from services.common.cloudevents import new_event
from services.common.db import make_engine
from services.common.migrations import upgrade
from services.router.config import RouterSettings
from tests.support.kafka_io import produce_raw, read_topic

__all__ = [
    "LINK_SECRET",
    "WEBHOOK_SECRET",
    "ManualClock",
    "People",
    "alert_events",
    "cancel",
    "directory_json",
    "migrated_engine",
    "notice",
    "position_groups_at_end",
    "publish",
    "router_settings",
    "update",
    "wait_sink",
]

WEBHOOK_SECRET = b"router-test-webhook-secret"
LINK_SECRET = "router-test-link-secret"


async def position_groups_at_end(bootstrap: str, prefix: str) -> None:
    """Commit the current end offsets for the router's groups, as if they had read it all."""
    await ensure_topics(bootstrap, [NOTICES, ALERTS])
    for topic, group in ((NOTICES, f"{prefix}.notices"),):
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(topic) or set()
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            ends = await consumer.end_offsets(assigned)
            await consumer.commit(dict(ends))
        finally:
            await consumer.stop()


def router_settings(
    make_settings: Callable[..., Any],
    *,
    kafka_bootstrap: str,
    database_url: str | None,
    smtp_port: int,
    prefix: str,
    **overrides: Any,
) -> RouterSettings:
    """Settings for one test router (short timers, the test's sinks and groups)."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "router_group_prefix": prefix,
        "smtp_port": smtp_port,
        "webhook_secrets": [WEBHOOK_SECRET.decode()],
        "link_secret": LINK_SECRET,
        "router_timer_poll_interval_s": 0.25,
        "router_intake_base_url": "http://intake.test",
        "public_base_url": "http://router.test",
        "consumer_backoff_s": 0.05,
    }
    values.update(overrides)
    settings: RouterSettings = make_settings(RouterSettings, **values)
    return settings


class ManualClock:
    """A clock the test moves on: a timer fires when the test says its wait has passed.

    Tests that check escalation timing never race the wall clock this way: nothing fires
    until `advance`, and then the worker (polling every 0.25 s) fires it, however loaded
    the machine is.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move time on by `seconds`; returns the new now."""
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass(frozen=True)
class People:
    """The people of a test directory."""

    spoc: uuid.UUID
    backup: uuid.UUID
    deputy: uuid.UUID

    @classmethod
    def fresh(cls) -> People:
        return cls(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())


def directory_json(
    people: People,
    webhook: WebhookSink,
    *,
    spoc_wait_s: float = 60,
    backup_wait_s: float = 60,
    repeat: int = 0,
    delegations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """SPOC (webhook + e-mail), a deputy (webhook), a backup (e-mail); SPOC then backup."""
    return {
        "people": [
            {
                "id": str(people.spoc),
                "name": "Assistant Chief",
                "channels": {
                    "webhook_url": webhook.url(f"/hooks/{people.spoc}"),
                    "email": "spoc@police.example",
                },
            },
            {
                "id": str(people.deputy),
                "name": "Commander (deputy)",
                "channels": {"webhook_url": webhook.url(f"/hooks/{people.deputy}")},
            },
            {
                "id": str(people.backup),
                "name": "Captain (backup)",
                "channels": {"email": "backup@police.example"},
            },
        ],
        "spoc": {"person_id": str(people.spoc), "delegations": delegations or []},
        "policy": {
            "steps": [
                {"target": "spoc", "wait_s": spoc_wait_s},
                {"target": "person", "person_id": str(people.backup), "wait_s": backup_wait_s},
            ],
            "repeat": repeat,
        },
    }


def notice(
    *,
    status: Status = "Actual",
    starts_in: timedelta = timedelta(hours=1),
    summary: str = "Federal agents plan an operation in the district.",
    notice_id: uuid.UUID | None = None,
) -> NoticeReceived:
    """Version 1 of a notice, releasable fields only."""
    now = datetime.now(UTC)
    return NoticeReceived(
        notice_id=notice_id or uuid.uuid4(),
        version=1,
        references=(),
        status=status,
        sent_at=now,
        received_at=now,
        received_via="api",
        operation_type="targeted_arrest",
        public_safety_nexus=True,
        window_start=now + starts_in,
        window_end=now + starts_in + timedelta(hours=4),
        area="District 4",
        summary=summary,
        policy_annotations=(),
        restricted_fingerprints=(),
        fingerprint_key_id="test",
    )


def update(first: NoticeReceived, version: int, *, summary: str) -> NoticeUpdated:
    """A later version of `first`."""
    now = datetime.now(UTC)
    data = first.model_dump()
    data.update(
        version=version,
        msg_type="Update",
        references=tuple(version_ref(first.notice_id, v) for v in range(1, version)),
        sent_at=now,
        received_at=now,
        summary=summary,
    )
    return NoticeUpdated.model_validate(data)


def cancel(first: NoticeReceived, version: int) -> NoticeCancelled:
    """The cancellation of `first`."""
    now = datetime.now(UTC)
    return NoticeCancelled(
        notice_id=first.notice_id,
        version=version,
        references=tuple(version_ref(first.notice_id, v) for v in range(1, version)),
        status=first.status,
        sent_at=now,
        received_at=now,
        reason="operation_postponed",
    )


async def publish(
    bootstrap: str,
    *events: NoticeReceived | NoticeUpdated | NoticeCancelled,
    correlation_id: str | None = None,
) -> list[str]:
    """Produce real CloudEvents to aviso.notices.v1 as intake would; returns message ids."""
    outgoing = [
        new_event(e, source="aviso.intake", correlation_id=correlation_id or f"corr-{uuid.uuid4()}")
        for e in events
    ]
    await produce_raw(
        bootstrap,
        NOTICES,
        [
            (o.key.encode(), o.payload.encode(), [(k, v.encode()) for k, v in o.headers.items()])
            for o in outgoing
        ],
    )
    return [o.message_id for o in outgoing]


async def wait_sink(
    sink: WebhookSink | SmtpSink,
    predicate: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """Wait (off the event loop) until the sink's recordings satisfy `predicate`."""
    return await asyncio.to_thread(sink.wait_for, predicate, timeout)


async def alert_events(
    bootstrap: str,
    alert_id: uuid.UUID,
    *,
    until: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """The alert events emitted under `alert_id`, read from aviso.alerts.v1 in order.

    Read from the topic: the router deletes an outbox row once Kafka has it. Each event
    once, by its message id (a relay that crashed after Kafka's ack publishes its row
    again, under the same id). The alert id derives from the test's fresh notice id, so
    only a router consuming this broker's notices from outside the test (a dev stack's)
    could emit under it too: run the tests on a broker of their own.
    """
    key = str(alert_id).encode()
    events: list[dict[str, Any]] = []

    def satisfied(records: list[Any]) -> bool:
        events[:] = _events_once(records)
        return until(events)

    records = await read_topic(
        bootstrap, ALERTS, until=satisfied, timeout=timeout, key_filter=lambda k: k == key
    )
    if not satisfied(records):
        raise AssertionError(f"alert events never satisfied the condition: {events}")
    return events


def _events_once(records: list[Any]) -> list[dict[str, Any]]:
    """Topic records as events (id, type, correlation id, data), each message id once."""
    seen: set[str] = set()
    events = []
    for record in records:
        headers = {name: value.decode() for name, value in record.headers}
        if headers["ce_id"] in seen:
            continue
        seen.add(headers["ce_id"])
        events.append(
            {
                "id": headers["ce_id"],
                "type": headers["ce_type"],
                "correlation_id": headers.get("ce_correlationid"),
                "data": json.loads(record.value),
            }
        )
    return events


async def poll_json(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 20.0,
) -> dict[str, Any]:
    """GET `url` until the JSON body satisfies `predicate` (404 counts as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        response = await client.get(url, headers=headers)
        if response.status_code == 200:
            last = response.json()
            if predicate(last):
                return dict(last)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never satisfied the condition; last: {last}")


@asynccontextmanager
async def migrated_engine(
    database_url: str, make_settings: Callable[..., Any]
) -> AsyncIterator[AsyncEngine]:
    """Router's engine on `database_url`, its schema migrated to the latest; disposed after."""
    settings: RouterSettings = make_settings(RouterSettings, database_url=database_url)
    await upgrade(settings, "router")
    engine = make_engine(settings, "router")
    try:
        yield engine
    finally:
        await engine.dispose()
