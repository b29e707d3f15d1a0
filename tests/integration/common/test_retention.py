"""The messaging tables' retention on both back ends: old sent rows and old claims go, the
rest stays (unsent rows above all), in batches, and the worker prunes at once and stops."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import make_engine, make_session_factory
from services.common.messaging import inbox_messages, outbox_messages
from services.common.migrations import upgrade
from services.common.retention import MessagingRetention, Pruned
from services.common.runtime import ServiceRuntime
from services.common.settings import CommonSettings

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAY = 86_400


@pytest.fixture
async def engine(
    database_url: str | None, make_settings: Callable[..., CommonSettings]
) -> AsyncIterator[AsyncEngine]:
    settings = make_settings(database_url=database_url)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    yield engine
    await engine.dispose()


async def _outbox_row(engine: AsyncEngine, *, label: str, sent_days_ago: float | None) -> None:
    sent_at = None if sent_days_ago is None else NOW - timedelta(days=sent_days_ago)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(outbox_messages).values(
                message_id=str(uuid.uuid4()),
                topic="aviso.notices.v1",
                key=label,
                event_type="notice.received",
                headers={},
                payload="{}",
                created_at=NOW - timedelta(days=40),
                sent_at=sent_at,
            )
        )


async def _claim(engine: AsyncEngine, *, message_id: str, days_ago: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(inbox_messages).values(
                consumer="router.notices",
                message_id=message_id,
                topic="aviso.notices.v1",
                processed_at=NOW - timedelta(days=days_ago),
            )
        )


async def _left(engine: AsyncEngine) -> tuple[list[str], list[str]]:
    async with engine.connect() as conn:
        keys = (await conn.execute(sa.select(outbox_messages.c.key))).scalars().all()
        ids = (await conn.execute(sa.select(inbox_messages.c.message_id))).scalars().all()
    return sorted(keys), sorted(ids)


def _retention(engine: AsyncEngine, **kwargs: float) -> MessagingRetention:
    values = {"outbox_retention_s": 7 * DAY, "inbox_retention_s": 30 * DAY, "interval_s": 3600}
    values.update(kwargs)
    return MessagingRetention(make_session_factory(engine), clock=lambda: NOW, **values)  # type: ignore[arg-type]


async def test_old_sent_rows_and_old_claims_go_the_rest_stays(engine: AsyncEngine) -> None:
    await _outbox_row(engine, label="sent-long-ago", sent_days_ago=8)
    await _outbox_row(engine, label="sent-lately", sent_days_ago=6)
    await _outbox_row(engine, label="never-sent", sent_days_ago=None)
    await _claim(engine, message_id="claimed-long-ago", days_ago=31)
    await _claim(engine, message_id="claimed-lately", days_ago=29)

    pruned = await _retention(engine).prune()

    assert (pruned.outbox, pruned.inbox) == (1, 1)
    assert await _left(engine) == (["never-sent", "sent-lately"], ["claimed-lately"])
    # Nothing left past retention: a second pruning deletes nothing.
    again = await _retention(engine).prune()
    assert (again.outbox, again.inbox) == (0, 0)


async def test_batches_go_on_until_none_is_left(engine: AsyncEngine) -> None:
    for n in range(7):
        await _outbox_row(engine, label=f"old-{n}", sent_days_ago=10)
        await _claim(engine, message_id=f"old-{n}", days_ago=40)
    await _outbox_row(engine, label="unsent", sent_days_ago=None)

    pruned = await _retention(engine, batch=3).prune()

    assert (pruned.outbox, pruned.inbox) == (7, 7)
    assert await _left(engine) == (["unsent"], [])


async def test_the_worker_prunes_at_once_and_stops_when_told(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _outbox_row(engine, label="old", sent_days_ago=10)
    stop = asyncio.Event()
    # An interval no test waits out: the first pruning must come at start.
    retention = _retention(engine, interval_s=3600)
    pruned_once = asyncio.Event()
    prune = retention.prune

    async def prune_and_tell() -> Pruned:
        pruned = await prune()
        pruned_once.set()
        return pruned

    monkeypatch.setattr(retention, "prune", prune_and_tell)
    worker = asyncio.create_task(retention.run(stop))
    await asyncio.wait_for(pruned_once.wait(), timeout=30)
    assert await _left(engine) == ([], [])
    stop.set()
    await asyncio.wait_for(worker, timeout=30)


async def test_every_service_runtime_runs_the_retention(
    make_settings: Callable[..., CommonSettings],
) -> None:
    settings = make_settings(outbox_retention_s=3 * DAY, inbox_retention_s=20 * DAY)
    runtime = ServiceRuntime(name="intake", settings=settings)
    try:
        assert "messaging-retention" in [w.name for w in runtime._workers]
        assert runtime.retention._outbox_retention == timedelta(days=3)
        assert runtime.retention._inbox_retention == timedelta(days=20)
    finally:
        await runtime.engine.dispose()
        await runtime.auth_engine.dispose()
