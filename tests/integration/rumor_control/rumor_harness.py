"""A running rumor_control app against real Kafka and PostgreSQL, with real sinks, for tests.

One app per test module (starting Kafka consumers costs seconds): each test uses its own
notices, places and times, and filters what it reads by ids.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

from deploy.local.sinks import SmtpSink, WebhookSink
from schemas.alerts import AlertAcknowledged
from schemas.base import EventData, Status
from schemas.notices import NoticeReceived
from schemas.topics import ALERTS, NOTICES
from services.common.auth import Role
from services.common.cloudevents import new_event
from services.common.db import make_engine
from services.common.logging import configure_logging
from services.rumor_control.app import create_app
from services.rumor_control.config import PACKAGE_DIR, RumorControlSettings
from services.rumor_control.domain import fingerprint_key_id
from services.rumor_control.subscribers import group_id
from services.rumor_control.tables import delivery_records, standby_requests
from tests.support.apps import issue_test_token, running_app
from tests.support.events import fingerprinted_notice
from tests.support.kafka_io import produce_raw, wait_for

__all__ = ["RumorApp", "rumor_app_running"]

WEBHOOK_SECRET = "rumor-test-webhook-secret"


@dataclass
class RumorApp:
    """The app, its client, tokens by role, sinks and the department it was configured with."""

    settings: RumorControlSettings
    client: httpx.AsyncClient
    tokens: dict[str, str]
    webhook: WebhookSink
    smtp: SmtpSink
    department: dict[str, Any]
    log_file: Path

    @property
    def spanish_liaison(self) -> str:
        return str(self.department["liaisons"][0]["id"])

    @property
    def english_liaison(self) -> str:
        return str(self.department["liaisons"][1]["id"])

    @property
    def outreach_unit(self) -> str:
        return str(self.department["drill_audience"][0]["id"])

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    @property
    def fingerprint_key(self) -> bytes:
        return self.settings.fingerprint_key.get_secret_value().encode()

    async def produce(self, *events: EventData, source: str) -> None:
        messages = []
        for data in events:
            outgoing = new_event(data, source=source)
            headers = [(k, v.encode()) for k, v in outgoing.headers.items()]
            messages.append((outgoing.key.encode(), outgoing.payload.encode(), headers))
        await produce_raw(self.settings.kafka_bootstrap_servers, events[0].topic, messages)

    def notice(
        self,
        *,
        area_code: str = "riverside",
        status: Status = "Actual",
        restricted_terms: tuple[str, ...] = (),
        start: datetime | None = None,
    ) -> NoticeReceived:
        """A notice as intake would emit it: restricted terms only as fingerprints."""
        return fingerprinted_notice(
            fingerprint_key=self.fingerprint_key,
            key_id=fingerprint_key_id(self.fingerprint_key),
            now=datetime.now(UTC),
            area_code=area_code,
            status=status,
            restricted_terms=restricted_terms,
            start=start,
        )

    @staticmethod
    def acknowledgement(notice: NoticeReceived) -> AlertAcknowledged:
        return AlertAcknowledged(
            alert_id=uuid.uuid4(),
            notice_id=notice.notice_id,
            notice_version=notice.version,
            status=notice.status,
            acknowledged_by=uuid.uuid4(),
            method="api",
            step=0,
            acknowledged_at=datetime.now(UTC),
        )

    async def wait_for_standby_request(self, notice_id: uuid.UUID, timeout: float = 45) -> None:
        """Until the acknowledgement of a notice not yet known is recorded as waiting for it."""
        engine = make_engine(self.settings, "rumor_control")
        statement = sa.select(standby_requests.c.notice_id).where(
            standby_requests.c.notice_id == str(notice_id)
        )

        async def recorded() -> bool:
            async with engine.connect() as connection:
                return (await connection.execute(statement)).first() is not None

        try:
            await wait_for(recorded, timeout=timeout, interval=0.2)
        finally:
            await engine.dispose()

    async def bulletins(self, who: str = "vetter_a") -> list[dict[str, Any]]:
        response = await self.client.get("/v1/bulletins", headers=self.auth(who))
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    async def wait_for_bulletin(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 45
    ) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        async def check() -> bool:
            found[:] = [b for b in await self.bulletins() if predicate(b)]
            return bool(found)

        await wait_for(check, timeout=timeout, interval=0.3)
        return found[0]

    async def bulletin(self, bulletin_id: str, who: str = "vetter_a") -> dict[str, Any]:
        response = await self.client.get(f"/v1/bulletins/{bulletin_id}", headers=self.auth(who))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def report(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post("/v1/rumors", json=body, headers=self.auth("liaison"))
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def delivery_records(self, bulletin_id: str) -> list[dict[str, Any]]:
        """The delivery engine's records of a bulletin, as stored."""
        engine = make_engine(self.settings, "rumor_control")
        t = delivery_records
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(sa.select(t).where(t.c.aggregate_id == bulletin_id))
                return [dict(row._mapping) for row in rows]
        finally:
            await engine.dispose()

    async def timeline(self, bulletin_id: str, who: str = "ops") -> list[dict[str, Any]]:
        """The bulletin's timeline as ops read it."""
        response = await self.client.get(
            f"/v1/bulletins/{bulletin_id}/timeline", headers=self.auth(who)
        )
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    async def webhooks_for(
        self, bulletin_id: str, count: int, timeout: float = 45
    ) -> list[dict[str, Any]]:
        def mine(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [i for i in items if i["payload"].get("bulletin_id") == bulletin_id]

        await asyncio.to_thread(
            self.webhook.wait_for, lambda items: len(mine(items)) >= count, timeout
        )
        return mine(self.webhook.received)


def _department(tmp: Path, webhook: WebhookSink) -> dict[str, Any]:
    """The bundled department with fresh liaison ids pointing at the sinks."""
    data: dict[str, Any] = yaml.safe_load((PACKAGE_DIR / "department.yaml").read_text("utf-8"))
    data["liaisons"] = [
        {
            "id": str(uuid.uuid4()),
            "name": "Casa Hispana Community Center",
            "language": "es",
            "webhook_url": webhook.url("/liaisons/casa-hispana"),
        },
        {
            "id": str(uuid.uuid4()),
            "name": "Northgate Neighbors Association",
            "language": "en",
            "email": "board@northgate-neighbors.example",
            "webhook_url": webhook.url("/liaisons/northgate"),
        },
    ]
    data["radio_desk"] = {
        "id": str(uuid.uuid4()),
        "name": "La Movida newsroom",
        "language": "es",
        "email": "redaccion@lamovida.example",
    }
    data["drill_audience"] = [
        {
            "id": str(uuid.uuid4()),
            "name": "Community Outreach Unit",
            "language": "es",
            "webhook_url": webhook.url("/outreach"),
        }
    ]
    return data


async def skip_history(bootstrap: str, groups: Mapping[str, str | Iterable[str]]) -> None:
    """Commit each new consumer group's offsets at the end of its topic.

    The service's groups start from the earliest offset (right for a new deployment), but a
    shared broker keeps every earlier run's events; a test app need not replay them all.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    for group, wanted in groups.items():
        topics = [wanted] if isinstance(wanted, str) else list(wanted)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            # aiokafka's public partitions_for_topic reads a cache nothing public fills.
            metadata = await consumer._client.fetch_all_metadata()
            assigned = [
                TopicPartition(topic, n)
                for topic in topics
                for n in metadata.partitions_for_topic(topic) or set()
            ]
            if not assigned:
                continue
            consumer.assign(assigned)
            await consumer.seek_to_end(*assigned)
            offsets = {tp: await consumer.position(tp) for tp in assigned}
            await consumer.commit(offsets)
        finally:
            await consumer.stop()


@asynccontextmanager
async def rumor_app_running(
    tmp: Path,
    *,
    database_url: str | None,
    kafka_bootstrap: str,
    recipients: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> AsyncIterator[RumorApp]:
    """Sinks, settings, tokens and the app's lifespan; everything stopped afterwards.

    `recipients` may change the department (liaisons, radio desk) before the app reads it;
    `overrides` are settings.
    """
    log_file = tmp / "rumor_control.log.jsonl"
    configure_logging("rumor_control", level="INFO", fmt="json", log_file=log_file, force=True)
    # The first webhook call is answered 503: delivery must retry it.
    sink = WebhookSink(secrets=[WEBHOOK_SECRET.encode()], fail_first=1)
    with sink as webhook, SmtpSink() as smtp:
        department = _department(tmp, webhook)
        if recipients is not None:
            recipients(department)
        department_file = tmp / "department.yaml"
        department_file.write_text(yaml.safe_dump(department, allow_unicode=True), "utf-8")
        settings = RumorControlSettings(
            var_dir=tmp / "var",
            database_url=database_url,
            kafka_bootstrap_servers=kafka_bootstrap,
            consumer_backoff_s=0.05,
            outbox_poll_interval_s=0.5,
            shutdown_grace_s=10.0,
            log_format="json",
            webhook_secrets=[WEBHOOK_SECRET],
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            rumor_department_file=department_file,
            rumor_group_prefix=f"test-{uuid.uuid4().hex[:8]}.",
            public_base_url="http://testserver",
            **overrides,
        )
        tokens = {
            "vetter_a": await issue_test_token(settings, Role.VETTER, "Vetter Ana", "vetter-ana"),
            "vetter_b": await issue_test_token(settings, Role.VETTER, "Vetter Beto", "vetter-beto"),
            "liaison": await issue_test_token(settings, Role.LIAISON, "Phone line", "phone-line"),
            "ops": await issue_test_token(settings, Role.OPS, "Ops", "ops"),
        }
        prefix = settings.rumor_group_prefix
        await skip_history(kafka_bootstrap, {group_id(prefix): (NOTICES, ALERTS)})
        app = create_app(settings)
        async with running_app(app) as client:
            yield RumorApp(settings, client, tokens, webhook, smtp, department, log_file)


def kafka_text(records: list[Any]) -> str:
    """Every key, header and value of the records, as one string to search."""
    parts: list[str] = []
    for record in records:
        parts.append((record.key or b"").decode("utf-8", "replace"))
        parts.append((record.value or b"").decode("utf-8", "replace"))
        parts.extend(v.decode("utf-8", "replace") for _, v in record.headers or ())
    return "\n".join(parts)


def payloads(records: list[Any]) -> list[dict[str, Any]]:
    """The JSON values of Kafka records."""
    return [json.loads(record.value) for record in records]
