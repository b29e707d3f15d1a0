"""rumor_control's consumer without a broker, for tests that hand it records: on a
migrated database with its handlers registered, and the rows a notice leaves behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.alerts import AlertAcknowledged
from schemas.base import EventData
from schemas.topics import ALERTS, NOTICES
from services.common.applying import ReadyMessage
from services.common.db import make_engine, make_session_factory
from services.common.kafka import EventConsumer
from services.common.messaging import inbox_messages
from services.common.migrations import upgrade
from services.rumor_control import notices, subscribers
from services.rumor_control.config import RumorControlSettings
from services.rumor_control.deps import RumorControlDeps
from services.rumor_control.tables import bulletins, standby_requests
from services.rumor_control.tables import notices as notice_rows
from tests.support.records import FetchedRecord

__all__ = ["Record", "RumorConsumer", "acknowledged", "rumor_consumer"]


class Record(FetchedRecord):
    """A notice's record as intake's relay publishes it, or an acknowledgement's."""

    def __init__(self, data: EventData, offset: int, *, message_id: str | None = None) -> None:
        topic, source = (
            (ALERTS, "aviso.router")
            if isinstance(data, AlertAcknowledged)
            else (NOTICES, "aviso.intake")
        )
        super().__init__(data, offset, topic=topic, source=source, message_id=message_id)


@dataclass
class RumorConsumer:
    engine: AsyncEngine
    deps: RumorControlDeps
    consumer: EventConsumer
    postgres: bool

    async def ready(self, record: Record) -> ReadyMessage:
        """`record` parsed and routed as the consumer would apply it."""
        (subscription,) = self.consumer._subscriptions.values()
        item = await self.consumer._prepare(subscription, record)
        assert item is not None
        return item

    async def count(self, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
        async with self.engine.connect() as connection:
            query = sa.select(sa.func.count()).select_from(table).where(where)
            return int((await connection.execute(query)).scalar_one())

    async def written(self, notice_id: uuid.UUID, message_id: str) -> list[int]:
        """[notice rows, inbox rows of the message, standby requests, standby bulletins]."""
        key = str(notice_id)
        return [
            await self.count(notice_rows, notice_rows.c.notice_id == key),
            await self.count(inbox_messages, inbox_messages.c.message_id == message_id),
            await self.count(standby_requests, standby_requests.c.notice_id == key),
            await self.count(bulletins, bulletins.c.standby_for_notice == key),
        ]

    async def acknowledge(self, version: Any) -> None:
        """An acknowledgement that came before its notice: a standby request waits."""
        async with self.deps.unit_of_work() as uow:
            await notices.acknowledge_alert(uow, deps=self.deps, acknowledged=acknowledged(version))
            await uow.commit()


def acknowledged(version: Any) -> AlertAcknowledged:
    """The SPOC's acknowledgement of `version`'s alert."""
    return AlertAcknowledged(
        alert_id=uuid.uuid4(),
        notice_id=version.notice_id,
        notice_version=1,
        status=version.status,
        acknowledged_by=uuid.uuid4(),
        method="api",
        step=0,
        acknowledged_at=datetime.now(UTC),
    )


class _NoDelivery:
    async def accept_many(self, session: object, orders: object) -> int:
        return 0


@asynccontextmanager
async def rumor_consumer(
    database_url: str | None, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, RumorControlDeps, EventConsumer]]:
    """rumor_control's consumer on a migrated database, its handlers registered; no
    broker started (records are handed to it)."""
    settings = RumorControlSettings(
        var_dir=tmp_path / "var",
        database_url=database_url,
        consumer_max_attempts=3,
        consumer_backoff_s=0.001,
    )
    await upgrade(settings, "rumor_control")
    engine = make_engine(settings, "rumor_control")
    sessions = make_session_factory(engine)
    deps = RumorControlDeps.build(
        settings, sessions=sessions, source="aviso.rumor_control", delivery=_NoDelivery()
    )
    consumer = EventConsumer(
        broker=KafkaBroker("127.0.0.1:1"), sessions=sessions, settings=settings,
        service="rumor_control",
    )  # fmt: skip
    subscribers.register(consumer, deps)
    try:
        yield engine, deps, consumer
    finally:
        await engine.dispose()
