"""A consumer fed records in memory, its inbox in a throwaway SQLite file.

The claim carrier's and the run carrier's tests share it: no Kafka and no PostgreSQL, the
records built by `tests.support.records`, and what a test checks read from the inbox.
The fixture `sqlite_consumer` (this package's conftest) yields `consumer_on_sqlite`'s pair.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from faststream.kafka import KafkaBroker

from services.common.db import make_engine, make_session_factory
from services.common.kafka import EventConsumer
from services.common.messaging import inbox_messages, messaging_metadata
from services.common.settings import CommonSettings
from tests.support.records import FetchedRecord

__all__ = ["InboxHarness", "consumer_on_sqlite"]


@dataclass
class InboxHarness:
    """The consumer under test, its sessions, and the group its records are applied in."""

    consumer: EventConsumer
    sessions: Any
    group: str

    async def apply(self, *records: FetchedRecord) -> None:
        """`records` applied as one fetch of the group's subscription."""
        subscription = self.consumer._subscriptions[self.group]
        await self.consumer.apply_records(subscription, None, list(records))

    async def inbox(self) -> list[str]:
        """The message ids the inbox holds, sorted."""
        async with self.sessions() as session:
            rows = await session.execute(sa.select(inbox_messages.c.message_id))
            return sorted(rows.scalars())


@asynccontextmanager
async def consumer_on_sqlite(tmp_path: Path) -> AsyncIterator[tuple[EventConsumer, Any]]:
    """A consumer on a fresh SQLite inbox under `tmp_path`, and its session factory;
    no back-off between tries, three tries before a dead letter."""
    settings = CommonSettings(
        var_dir=tmp_path, database_url=None, consumer_backoff_s=0.0, consumer_max_attempts=3
    )
    engine = make_engine(settings, "intake")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(messaging_metadata.create_all)
        sessions = make_session_factory(engine)
        consumer = EventConsumer(
            broker=KafkaBroker(), sessions=sessions, settings=settings, service="t"
        )
        yield consumer, sessions
    finally:
        await engine.dispose()
