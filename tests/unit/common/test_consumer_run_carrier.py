"""The consumer handing a batch's leading run, with its inbox claims, to a run carrier.

No Kafka and no PostgreSQL: records are built in memory, the inbox lives in a throwaway
SQLite file, and "on PostgreSQL" is what `is_postgres_session` answers (patched where a
test needs it). The carrier here claims what it applies in a transaction of its own, as
router's pipelined openings commit by themselves, and declines what the test says; what
is checked is which messages the consumer offers it, what it applies afterwards and in
which order, and what a failing carrier leaves.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog

from schemas.notices import NoticeUpdated
from services.common import applying
from services.common.applying import Handler
from services.common.cloudevents import Envelope
from services.common.db import UnitOfWork
from services.common.inbox import Claim, claim_messages
from services.common.kafka import EventConsumer
from tests.support.events import notice_cancelled, notice_updated
from tests.support.records import FetchedRecord
from tests.unit.common.inbox_harness import InboxHarness

TOPIC, GROUP = "aviso.test.runs", "runs"


class Updated(FetchedRecord):
    """A notice.updated record: the carried route."""

    def __init__(self, offset: int, *, message_id: str | None = None) -> None:
        data = notice_updated(uuid.uuid4(), 2)
        super().__init__(data, offset, topic=TOPIC, message_id=message_id)


class Cancelled(FetchedRecord):
    """A notice.cancelled record: a route with no carrier."""

    def __init__(self, offset: int) -> None:
        super().__init__(notice_cancelled(uuid.uuid4()), offset, topic=TOPIC)


@dataclass
class Harness(InboxHarness):
    offered: list[list[str]] = field(default_factory=list)  # each run the carrier was given
    handled: list[str] = field(default_factory=list)  # the usual path's handlers
    committed: list[str] = field(default_factory=list)  # after-commit effects, in order
    declined: set[str] = field(default_factory=set)  # what the carrier does not apply
    fails: bool = False


@pytest.fixture
async def harness(sqlite_consumer: tuple[EventConsumer, Any]) -> Harness:
    consumer, sessions = sqlite_consumer
    h = Harness(consumer, sessions, GROUP)

    async def carry_run(
        envelopes: Sequence[Envelope[NoticeUpdated]], claims: Sequence[Claim], uow: UnitOfWork
    ) -> list[Handler | None]:
        h.offered.append([e.id for e in envelopes])
        assert all(c.at is not None for c in claims), "stamped when the try began"
        if h.fails:
            raise RuntimeError("the run's statements failed")  # nothing of it written
        async with h.sessions() as alone, alone.begin():  # as one implicit transaction
            recorded = await claim_messages(
                alone, [c for c in claims if c.message_id not in h.declined]
            )
        applied = {message_id for _, message_id in recorded}
        return [_finisher(h) if e.id in applied else None for e in envelopes]

    consumer.on("notice.updated", topic=TOPIC, group_id=GROUP, carry_run=carry_run)(_handler(h))
    consumer.on("notice.cancelled", topic=TOPIC, group_id=GROUP)(_handler(h))
    return h


def _finisher(h: Harness) -> Handler:
    async def finish(envelope: Envelope[Any], uow: UnitOfWork) -> None:
        uow.after_commit(lambda: h.committed.append(envelope.id))

    return finish


def _handler(h: Harness) -> Handler:
    async def handle(envelope: Envelope[Any], uow: UnitOfWork) -> None:
        h.handled.append(envelope.id)
        uow.after_commit(lambda: h.committed.append(envelope.id))

    return handle


@pytest.fixture
def on_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(applying, "is_postgres_session", lambda _session: True)


@pytest.mark.usefixtures("on_postgres")
async def test_a_leading_run_is_carried_whole(harness: Harness) -> None:
    batch = [Updated(i) for i in range(3)]
    await harness.apply(*batch)

    ids = [r.message_id for r in batch]
    assert harness.offered == [ids]
    assert harness.handled == [], "carried: no usual path"
    assert harness.committed == ids, "each one's effects, in order, after its commit"
    assert await harness.inbox() == sorted(ids)
    assert harness.consumer.applier.processed_total == 3


@pytest.mark.usefixtures("on_postgres")
async def test_what_the_run_leaves_is_applied_before_the_rest_of_the_batch(
    harness: Harness,
) -> None:
    first, left, last = Updated(1), Updated(2), Cancelled(3)
    harness.declined.add(left.message_id)
    await harness.apply(first, left, last)

    assert harness.offered == [[first.message_id, left.message_id]], "the run stops at cancel"
    assert harness.handled == [left.message_id, last.message_id]
    assert harness.committed == [first.message_id, left.message_id, last.message_id]
    assert await harness.inbox() == sorted(r.message_id for r in (first, left, last))
    assert harness.consumer.applier.processed_total == 3


@pytest.mark.usefixtures("on_postgres")
async def test_a_duplicate_the_run_leaves_is_skipped_by_the_usual_claim(
    harness: Harness,
) -> None:
    seen = Updated(1)
    await harness.apply(seen)  # applied once, alone
    again, new = Updated(1, message_id=seen.message_id), Updated(2)

    with structlog.testing.capture_logs() as logs:
        await harness.apply(again, new)

    assert harness.offered[-1] == [seen.message_id, new.message_id]
    assert harness.handled == [seen.message_id], "only its first, lone delivery"
    assert [e["event"] for e in logs].count("consumer.duplicate_skipped") == 1
    assert harness.committed == [seen.message_id, new.message_id]
    assert harness.consumer.applier.processed_total == 2


@pytest.mark.usefixtures("on_postgres")
async def test_a_batch_led_by_another_route_is_not_carried(harness: Harness) -> None:
    batch = [Cancelled(1), Updated(2), Updated(3)]
    await harness.apply(*batch)

    assert harness.offered == []
    assert harness.handled == [r.message_id for r in batch]


@pytest.mark.usefixtures("on_postgres")
async def test_a_failing_run_fails_the_batch_without_charging_a_try(harness: Harness) -> None:
    harness.fails = True
    batch = [Updated(1), Updated(2), Cancelled(3)]

    with structlog.testing.capture_logs() as logs:
        await harness.apply(*batch)

    (failed,) = [e for e in logs if e["event"] == "consumer.batch_failed"]
    assert failed["failed_message_id"] is None
    assert failed["size"] == 3
    assert not [e for e in logs if e["event"] == "consumer.retrying"]
    assert harness.handled == [r.message_id for r in batch], "each alone, in order"
    assert await harness.inbox() == sorted(r.message_id for r in batch)


async def test_sqlite_never_offers_the_run(harness: Harness) -> None:
    batch = [Updated(1), Updated(2)]
    await harness.apply(*batch)

    assert harness.offered == []
    assert harness.handled == [r.message_id for r in batch]
    assert harness.consumer.applier.batches_total == 1
