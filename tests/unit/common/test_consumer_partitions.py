"""EventConsumer applying each partition's records side by side (`by_partition=True`).

No Kafka, no database: records are built in memory and handed to `apply_records` as the
subscriber hands it what the fetch buffer held; the applier's two ways of applying are
replaced by recorders that wait for each other, so a test sees which records were applied
together, in what order, and whether the parts overlapped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import create_async_engine

from schemas.notices import NoticeUpdated
from services.common.applying import ReadyMessage
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork, make_session_factory
from services.common.kafka import EventConsumer
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.records import FetchedRecord

TOPIC = "aviso.test.partitions"
# Far longer than the parts need to meet; reached only when they never run at once.
_DEADLINE_S = 30.0


def _record(partition: int, offset: int) -> FetchedRecord:
    record = FetchedRecord(notice_updated(uuid.uuid4(), 2), offset, topic=TOPIC)
    record.partition = partition
    return record


class Recorder:
    """Stands in for the applier: records what each call applied; with `meet`, each call
    waits until that many calls are under way at once."""

    def __init__(self, *, meet: int = 1) -> None:
        self.applied: list[list[str]] = []
        self.done: list[list[str]] = []
        self._meet = meet
        self._started = 0
        self._all_started = asyncio.Event()

    async def _record(self, ids: list[str]) -> None:
        self.applied.append(ids)
        self._started += 1
        if self._started >= self._meet:
            self._all_started.set()
        await asyncio.wait_for(self._all_started.wait(), _DEADLINE_S)
        self.done.append(ids)

    async def apply_batch(self, items: list[ReadyMessage]) -> list[Exception]:
        await self._record([item.message_id for item in items])
        return []

    async def apply(self, item: ReadyMessage, *, failed: Exception | None = None) -> None:
        await self._record([item.message_id])


def _consumer(tmp_path: Path, *, by_partition: bool) -> EventConsumer:
    engine = create_async_engine("sqlite+aiosqlite://")  # never connects here
    consumer = EventConsumer(
        broker=KafkaBroker(),
        sessions=make_session_factory(engine),
        settings=CommonSettings(var_dir=tmp_path, database_url=None),
        service="test",
    )
    consumer.group("g", inboxes={TOPIC: "g"}, by_partition=by_partition)

    @consumer.on("notice.updated", topic=TOPIC, group_id="g")
    async def handle(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        return None

    return consumer


def _ids(records: Sequence[FetchedRecord]) -> list[str]:
    return [record.message_id for record in records]


async def _apply(
    consumer: EventConsumer,
    recorder: Recorder,
    records: Sequence[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> list[list[str]]:
    """Apply `records`; what the applier had finished when the offsets were marked."""
    monkeypatch.setattr(consumer, "applier", recorder)
    finished_when_marked: list[list[str]] = []

    async def processed_all(_consumer: object, _records: Sequence[Any]) -> None:
        finished_when_marked.extend(list(recorder.done))

    monkeypatch.setattr(consumer.offsets, "processed_all", processed_all)
    await consumer.apply_records(consumer._subscriptions["g"], None, records)
    return finished_when_marked


async def test_each_partition_is_applied_in_its_own_batch_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = _consumer(tmp_path, by_partition=True)
    p0 = [_record(0, 10), _record(0, 11), _record(0, 12)]
    p1 = [_record(1, 7), _record(1, 8)]
    fetched = [p0[0], p1[0], p0[1], p1[1], p0[2]]
    recorder = Recorder(meet=2)  # each part waits until the other has started

    marked = await _apply(consumer, recorder, fetched, monkeypatch)

    assert sorted(recorder.applied) == sorted([_ids(p0), _ids(p1)]), (
        "one batch per partition, each in offset order"
    )
    assert sorted(marked) == sorted([_ids(p0), _ids(p1)]), (
        "the offsets are marked once both partitions' records are applied"
    )


async def test_a_partition_with_one_record_takes_the_one_message_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = _consumer(tmp_path, by_partition=True)
    p0 = [_record(0, 1), _record(0, 2)]
    (lone,) = [_record(2, 5)]
    recorder = Recorder(meet=2)

    await _apply(consumer, recorder, [*p0, lone], monkeypatch)

    assert sorted(recorder.applied) == sorted([_ids(p0), [lone.message_id]])


async def test_without_by_partition_the_fetched_records_are_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = _consumer(tmp_path, by_partition=False)
    fetched = [_record(0, 10), _record(1, 7), _record(0, 11)]
    recorder = Recorder()

    await _apply(consumer, recorder, fetched, monkeypatch)

    assert recorder.applied == [_ids(fetched)]
