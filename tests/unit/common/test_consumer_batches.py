"""EventConsumer applying several records in one transaction, and one at a time on failure.

No Kafka: records are built in memory and handed to `apply_records` as the subscriber
hands it what the fetch buffer held. The inbox lives in a throwaway SQLite file, and the
dead-letter publish is replaced by a recorder.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc
import structlog
from faststream.kafka import KafkaBroker
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.notices import NoticeUpdated
from services.common.cloudevents import Envelope, current_correlation_id
from services.common.db import UnitOfWork, make_engine, make_session_factory
from services.common.inbox import claim_message
from services.common.kafka import EventConsumer, Handler
from services.common.messaging import inbox_messages, messaging_metadata
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.records import FetchedRecord

TOPIC, GROUP = "aviso.test.batches", "batches"


class Record(FetchedRecord):
    """A notice.updated record on the test topic, its correlation id named by its offset."""

    def __init__(self, data: NoticeUpdated, offset: int, *, message_id: str | None = None) -> None:
        super().__init__(
            data, offset, topic=TOPIC, message_id=message_id, correlation_id=f"corr-{offset}"
        )


@dataclass
class Harness:
    engine: AsyncEngine
    consumer: EventConsumer
    calls: list[tuple[str, int]] = field(default_factory=list)  # (message id, session id)
    letters: list[tuple[str, int]] = field(default_factory=list)  # (message id, attempts)
    commits: int = 0
    failures: dict[uuid.UUID, Callable[[], Exception | None]] = field(default_factory=dict)
    # (message id, correlation id) bound while each after-commit effect ran
    after_commit: list[tuple[object, object]] = field(default_factory=list)

    async def apply(self, *records: Record) -> None:
        subscription = self.consumer._subscriptions[GROUP]
        await self.consumer.apply_records(subscription, None, list(records))

    async def effects(self) -> list[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT message_id FROM test_effects ORDER BY seq"))
            return [row.message_id for row in rows]


@pytest.fixture
async def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    settings = CommonSettings(
        var_dir=tmp_path, database_url=None, consumer_backoff_s=0.0, consumer_max_attempts=3
    )
    engine = make_engine(settings, "intake")
    async with engine.begin() as conn:
        await conn.run_sync(messaging_metadata.create_all)
        await conn.execute(
            sa.text(
                "CREATE TABLE test_effects (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "message_id VARCHAR(64))"
            )
        )
    consumer = EventConsumer(
        broker=KafkaBroker(), sessions=make_session_factory(engine), settings=settings, service="t"
    )
    h = Harness(engine, consumer)

    def committed(_conn: Any) -> None:
        h.commits += 1

    event.listen(engine.sync_engine, "commit", committed)

    async def dead_letter(group_id: str, record: Any, headers: Any, error: Any, **kw: Any) -> None:
        h.letters.append((dict(headers)["ce_id"], kw["attempts"]))

    monkeypatch.setattr(consumer, "_dead_letter", dead_letter)

    @consumer.on("notice.updated", topic=TOPIC, group_id=GROUP)
    async def handle(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        h.calls.append((envelope.id, id(uow.session)))
        await uow.session.execute(
            sa.text("INSERT INTO test_effects (message_id) VALUES (:m)"), {"m": envelope.id}
        )

        def effect() -> None:
            fields = structlog.contextvars.get_contextvars()
            h.after_commit.append((fields.get("message_id"), current_correlation_id.get()))

        uow.after_commit(effect)
        fail = h.failures.get(envelope.data.notice_id)
        error = fail() if fail is not None else None
        if error is not None:
            raise error

    yield h
    await engine.dispose()


def records(count: int, *, start: int = 0) -> list[Record]:
    return [Record(notice_updated(uuid.uuid4(), 2), start + i) for i in range(count)]


async def test_ready_records_are_applied_in_one_transaction_in_order(harness: Harness) -> None:
    batch = records(5)

    await harness.apply(*batch)

    assert harness.commits == 1, "one COMMIT for the five messages and their inbox rows"
    assert [m for m, _ in harness.calls] == [r.message_id for r in batch]
    assert len({session for _, session in harness.calls}) == 1, "one unit of work"
    assert await harness.effects() == [r.message_id for r in batch]
    async with harness.engine.connect() as conn:
        inbox = await conn.execute(sa.select(sa.func.count()).select_from(inbox_messages))
        assert inbox.scalar() == 5
    assert harness.consumer.applier.batches_total == 1
    assert harness.consumer.applier.processed_total == 5


async def test_a_lone_record_takes_the_one_message_path(harness: Harness) -> None:
    (lone,) = records(1)

    await harness.apply(lone)

    assert harness.commits == 1
    assert harness.consumer.applier.batches_total == 0
    assert await harness.effects() == [lone.message_id]


async def test_a_poison_message_is_dead_lettered_alone_and_the_rest_applied_once(
    harness: Harness,
) -> None:
    before, poison, *after = records(4)
    poison_id = uuid.UUID(_notice_id(poison))
    harness.failures[poison_id] = lambda: ValueError("cannot apply this notice")

    await harness.apply(before, poison, *after)

    # Its try in the batch counted: K tries in all, then the DLQ, as alone.
    assert [m for m, _ in harness.calls].count(poison.message_id) == 3
    assert harness.letters == [(poison.message_id, 3)]
    good = [before.message_id, *(r.message_id for r in after)]
    assert await harness.effects() == good, "the rest applied once each, in order"


async def test_duplicates_in_a_batch_and_already_recorded_ones_are_skipped(
    harness: Harness,
) -> None:
    seen, first, second = records(3)
    again = Record(notice_updated(uuid.uuid4(), 2), 3, message_id=first.message_id)
    async with UnitOfWork(harness.consumer.applier._sessions) as uow:
        await claim_message(uow.session, consumer=GROUP, message_id=seen.message_id, topic=TOPIC)
        await uow.commit()
    harness.commits = 0

    await harness.apply(seen, first, again, second)

    assert harness.commits == 1
    assert [m for m, _ in harness.calls] == [first.message_id, second.message_id]
    assert await harness.effects() == [first.message_id, second.message_id]


async def test_an_outage_mid_batch_spends_no_try_and_loses_nothing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness.consumer.applier, "_max_attempts", 1)  # any spent try: DLQ
    batch = records(3)
    outages = [sqlalchemy.exc.OperationalError("INSERT", {}, ConnectionResetError("server gone"))]
    harness.failures[uuid.UUID(_notice_id(batch[1]))] = lambda: outages.pop() if outages else None

    await harness.apply(*batch)

    assert harness.letters == []
    assert await harness.effects() == [r.message_id for r in batch]


async def test_after_commit_effects_keep_their_own_message_s_log_fields(
    harness: Harness,
) -> None:
    batch = records(3)

    await harness.apply(*batch)

    assert harness.commits == 1
    # Each message's effects ran at the batch's commit with its own message id and
    # correlation id bound, as they would have alone.
    assert harness.after_commit == [(r.message_id, f"corr-{r.offset}") for r in batch]
    assert current_correlation_id.get() is None, "nothing left bound after the commit"
    assert "message_id" not in structlog.contextvars.get_contextvars()


def _notice_id(record: Record) -> str:
    return str(json.loads(record.value)["notice_id"])


def _prepared_runs(harness: Harness, *, fail_with: str | None = None) -> list[list[str]]:
    """Give the test route a run preparer that records each run's message ids and hands
    back the route's handler (raising if `fail_with` is among them); the runs it saw."""
    route = harness.consumer._subscriptions[GROUP].routes[TOPIC, "notice.updated"]
    handler, runs = route.handler, []

    async def prepare(envelopes: Sequence[Envelope[Any]], uow: UnitOfWork) -> Handler:
        runs.append([envelope.id for envelope in envelopes])
        if fail_with in runs[-1]:
            raise ValueError("cannot prepare this run")
        return handler

    route.prepare_run = prepare
    return runs


async def test_a_run_is_prepared_once_then_each_message_finished_in_its_scope(
    harness: Harness,
) -> None:
    seen, *batch = records(4)
    async with UnitOfWork(harness.consumer.applier._sessions) as uow:
        await claim_message(uow.session, consumer=GROUP, message_id=seen.message_id, topic=TOPIC)
        await uow.commit()
    harness.commits = 0
    runs = _prepared_runs(harness)
    copy = Record(notice_updated(uuid.uuid4(), 2), 9, message_id=batch[0].message_id)

    await harness.apply(batch[0], seen, *batch[1:], copy)

    fresh = [r.message_id for r in batch]
    assert runs == [fresh], "one run of the new messages, duplicates left out, in order"
    assert [m for m, _ in harness.calls] == fresh
    assert await harness.effects() == fresh
    assert harness.commits == 1
    assert harness.after_commit == [(r.message_id, f"corr-{r.offset}") for r in batch]


async def test_a_run_whose_preparation_fails_is_applied_alone_the_poison_dead_lettered(
    harness: Harness,
) -> None:
    before, poison, after = records(3)
    harness.failures[uuid.UUID(_notice_id(poison))] = lambda: ValueError("cannot apply it")
    runs = _prepared_runs(harness, fail_with=poison.message_id)

    await harness.apply(before, poison, after)

    assert runs == [[before.message_id, poison.message_id, after.message_id]]
    # The preparation is no message's try: alone, the poison has its K tries, then the DLQ.
    assert [m for m, _ in harness.calls].count(poison.message_id) == 3
    assert harness.letters == [(poison.message_id, 3)]
    assert await harness.effects() == [before.message_id, after.message_id]
