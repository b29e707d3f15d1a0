"""The consumer handing a lone message's inbox claim to a handler that carries it.

No Kafka and no PostgreSQL: records are built in memory, the inbox lives in a throwaway
SQLite file, and "on PostgreSQL" is what `is_postgres_session` answers (patched where a
test needs it). The carrier here writes its effect and the claim itself; what is checked
is when the consumer offers it the claim (a lone record's first try, on PostgreSQL only)
and that everything else keeps the usual path.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from schemas.notices import NoticeUpdated
from services.common import applying
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.inbox import Claim, claim_message
from services.common.kafka import EventConsumer
from tests.support.events import notice_updated
from tests.support.records import FetchedRecord
from tests.unit.common.inbox_harness import InboxHarness

TOPIC, GROUP = "aviso.test.carried", "carried"


class Record(FetchedRecord):
    """A notice.updated record on the test topic."""

    def __init__(self, offset: int) -> None:
        super().__init__(notice_updated(uuid.uuid4(), 2), offset, topic=TOPIC)


@dataclass
class Harness(InboxHarness):
    handled: list[str] = field(default_factory=list)
    offered: list[str] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)  # after-commit effects, by message
    carries: bool = True  # what the carrier answers
    carrier_fails: bool = False
    spawns: bool = False  # whether the carried commit's effect starts a send (a task)
    sent: list[str] = field(default_factory=list)  # the send's write, by message


@pytest.fixture
async def harness(sqlite_consumer: tuple[EventConsumer, Any]) -> Harness:
    consumer, sessions = sqlite_consumer
    h = Harness(consumer, sessions, GROUP)

    async def carrier(envelope: Envelope[NoticeUpdated], uow: UnitOfWork, claim: Claim) -> bool:
        h.offered.append(envelope.id)
        assert claim.at is not None, "stamped when the try began, as the usual claim"
        if h.carrier_fails:
            raise RuntimeError("the carried statement failed")
        if not h.carries:
            return False
        # As one statement would: the claim with the effect (here in the transaction; or,
        # as router's opening on a borrowed connection, outside the unit of work's session,
        # whose commit then sends nothing).
        if h.spawns:
            async with h.sessions() as alone, alone.begin():
                await claim_message(
                    alone, consumer=claim.consumer, message_id=claim.message_id, topic=claim.topic
                )
        else:
            await claim_message(
                uow.session, consumer=claim.consumer, message_id=claim.message_id, topic=claim.topic
            )
        uow.after_commit(lambda: h.committed.append(envelope.id))
        if h.spawns:
            uow.after_commit(lambda: _start_send(h, envelope.id))
        return True

    @consumer.on("notice.updated", topic=TOPIC, group_id=GROUP, carrier=carrier)
    async def handle(envelope: Envelope[NoticeUpdated], uow: UnitOfWork) -> None:
        h.handled.append(envelope.id)
        uow.after_commit(lambda: h.committed.append(envelope.id))

    return h


_tasks: set[asyncio.Task[None]] = set()


def _start_send(h: Harness, message_id: str) -> None:
    # As the delivery engine's send: a task whose first step spawns the task that writes
    # (aiohttp's request body).
    async def write() -> None:
        h.sent.append(message_id)

    async def attempt() -> None:
        _spawn(write())

    _spawn(attempt())


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


@pytest.fixture
def on_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applying, "is_postgres_session", lambda _session: True)


@pytest.mark.usefixtures("on_postgres")
async def test_a_lone_record_is_carried_by_its_handler(harness: Harness) -> None:
    record = Record(1)
    await harness.apply(record)

    assert harness.offered == [record.message_id]
    assert harness.handled == [], "carried: the handler's usual path did not run"
    assert await harness.inbox() == [record.message_id], "claimed once, by the carrier"
    assert harness.committed == [record.message_id], "its after-commit effects ran"
    assert harness.consumer.applier.processed_total == 1


@pytest.mark.usefixtures("on_postgres")
async def test_a_record_the_carrier_declines_takes_the_usual_path(harness: Harness) -> None:
    harness.carries = False
    record = Record(1)
    await harness.apply(record)

    assert harness.offered == [record.message_id]
    assert harness.handled == [record.message_id]
    assert await harness.inbox() == [record.message_id]
    assert harness.committed == [record.message_id]


@pytest.mark.usefixtures("on_postgres")
async def test_a_failed_carried_try_is_retried_the_usual_way(harness: Harness) -> None:
    harness.carrier_fails = True
    record = Record(1)
    await harness.apply(record)

    assert harness.offered == [record.message_id], "offered on the first try only"
    assert harness.handled == [record.message_id]
    assert await harness.inbox() == [record.message_id]


@pytest.mark.usefixtures("on_postgres")
async def test_a_batch_never_offers_the_claim(harness: Harness) -> None:
    batch = [Record(1), Record(2)]
    await harness.apply(*batch)

    assert harness.offered == []
    assert harness.handled == [r.message_id for r in batch]
    assert harness.consumer.applier.batches_total == 1


async def test_sqlite_never_offers_the_claim(harness: Harness) -> None:
    record = Record(1)
    await harness.apply(record)

    assert harness.offered == []
    assert harness.handled == [record.message_id]
    assert await harness.inbox() == [record.message_id]


@pytest.mark.usefixtures("on_postgres")
async def test_a_send_its_commit_started_writes_before_the_consumer_s_tail(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.spawns = True
    closing = UnitOfWork.__aexit__

    async def closed(self: UnitOfWork, *exc: Any) -> None:
        harness.sent.append("unit of work closed")
        await closing(self, *exc)

    monkeypatch.setattr(UnitOfWork, "__aexit__", closed)
    record = Record(1)
    await harness.apply(record)
    # The send wrote before the consumer's tail began (the unit of work's close, then the
    # offsets and FastStream's end of the message).
    assert harness.sent == [record.message_id, "unit of work closed"]
