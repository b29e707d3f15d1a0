"""A run of notice.received in a batch on PostgreSQL: their openings in one round trip.

Router's `RunCarrier` (services/router/subscribers.py) takes the batch's leading run:
each usual opening built as a lone notice's would be, carrying its message's inbox
claim, all sent as one pipelined execution of the claiming opening statement (asyncpg's
`fetchmany`) without BEGIN, so PostgreSQL commits them as one implicit transaction at
the pipeline's Sync. A message whose opening wrote nothing (a duplicate, a notice with
its alert, a changed directory) is then applied as usual with the rest of the batch:
BEGIN, the inbox claim, the `RunPreparer`'s openings of a run (one round trip), the
slow path for one whose opening wrote nothing, COMMIT.
Counted on the wire (asyncpg's query log on every connection the engine hands out,
BEGIN and COMMIT included; a pipelined `fetchmany` is logged once): no timing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from schemas.notices import NoticeReceived
from schemas.topics import NOTICES
from services.common.applying import ReadyMessage, Route
from services.common.direct import DirectStatement
from services.common.messaging import outbox_messages
from services.router import alerting
from services.router.app import RouterRuntime
from services.router.config import RouterSettings
from services.router.domain import alert_id_for
from services.router.repository import alerts as alert_repository
from services.router.subscribers import register_consumers
from services.router.tables import alert_timeline, alerts, delivery_records
from tests.support.alerts import (
    OPENED,
    add_spoc_then_backup,
    opening_written,
    plain_notice,
)
from tests.support.records import FetchedRecord
from tests.support.router_runtime import stopped_router
from tests.support.statements import record_statements, round_trips

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPOC, BACKUP = uuid.uuid4(), uuid.uuid4()


class Record(FetchedRecord):
    """A notice's record on its topic, as intake's relay publishes it."""

    def __init__(self, data: NoticeReceived, offset: int, *, message_id: str | None = None) -> None:
        self.data = data
        super().__init__(
            data,
            offset,
            topic=NOTICES,
            source="aviso.intake",
            message_id=message_id,
            correlation_id=f"corr-{offset}-{uuid.uuid4()}",
        )


@pytest.fixture
async def runtime(
    database_url: str | None, make_settings: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RouterRuntime]:
    """A router on a migrated database with a directory, its consumers registered, the
    directory in force known (as after its first notice), deadlines counted; not started."""
    settings: RouterSettings = make_settings(
        RouterSettings,
        database_url=database_url,
        link_secret="test-link-secret",
        consumer_max_attempts=3,
        consumer_backoff_s=0.001,
    )
    async with stopped_router(settings, at=T0) as runtime:
        await add_spoc_then_backup(
            runtime.deps, spoc=SPOC, backup=BACKUP, version=1, wait_s=60, at=T0
        )
        register_consumers(runtime.consumer, runtime.deps)
        async with runtime.deps.unit_of_work() as uow:  # the first notice reads the directory
            await alerting.open_alert(uow, deps=runtime.deps, notice=plain_notice(T0))
            await uow.commit()
        assert runtime.deps.known_directory.latest is not None
        yield runtime


async def _ready(runtime: RouterRuntime, record: Record) -> ReadyMessage:
    (subscription,) = runtime.consumer._subscriptions.values()
    item = await runtime.consumer._prepare(subscription, record)
    assert item is not None
    return item


def _route(runtime: RouterRuntime) -> Route:
    """notice.received's route in router's notices group."""
    (subscription,) = runtime.consumer._subscriptions.values()
    return subscription.routes[NOTICES, "notice.received"]


async def _rows(runtime: RouterRuntime, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
    async with runtime.deps.sessions() as session:
        return [tuple(row) for row in await session.execute(query)]


async def _shape(runtime: RouterRuntime, notice: NoticeReceived) -> list[Any]:
    """What an opening left of a notice's alert, leaving out what is its own (ids, the
    notice's content) and the engine's clock readings: the alert's state and times, its
    timeline, its delivery records (the engine's accepts, and whose claim) and event."""
    alert_id = str(alert_id_for(notice.notice_id))
    unique = {"id", "notice_id", "content", "correlation_id", "active_escalation_id"}
    named = [c for c in alerts.c if c.name not in unique]
    kept = ("kind", "step", "repeat", "recipient_id", "channel", "notice_version", "at")
    accepted = ("recipient_id", "channel", "purpose", "state", "attempts", "claimed_by")
    return [
        await _rows(runtime, sa.select(*named).where(alerts.c.id == alert_id)),
        await _rows(
            runtime,
            sa.select(*(alert_timeline.c[n] for n in kept))
            .where(alert_timeline.c.alert_id == alert_id)
            .order_by(alert_timeline.c.id),
        ),
        await _rows(
            runtime,
            sa.select(*(delivery_records.c[n] for n in accepted))
            .where(delivery_records.c.aggregate_id == alert_id)
            .order_by(delivery_records.c.channel, delivery_records.c.recipient_id),
        ),
        await _rows(
            runtime,
            sa.select(outbox_messages.c.event_type).where(outbox_messages.c.key == alert_id),
        ),
    ]


async def _correlations(runtime: RouterRuntime, notice: NoticeReceived) -> set[Any]:
    """The correlation ids on the notice's alert and its delivery records."""
    alert_id = str(alert_id_for(notice.notice_id))
    on_alert = await _rows(
        runtime, sa.select(alerts.c.correlation_id).where(alerts.c.id == alert_id)
    )
    on_records = await _rows(
        runtime,
        sa.select(delivery_records.c.correlation_id).where(
            delivery_records.c.aggregate_id == alert_id
        ),
    )
    return {row[0] for row in on_alert + on_records}


def _deadlines(runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The escalation deadlines handed over after commits, from now on."""
    handed: list[datetime] = []
    monkeypatch.setattr(runtime.escalation, "timer_set", handed.append)
    return handed


async def _settle() -> None:
    """The loop turns a commit's after-commit effects take (the deadline, behind the sends)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_run_is_opened_in_one_round_trip_as_single_openings_leave_it(
    runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    applier = runtime.consumer.applier
    alone = [Record(plain_notice(T0), offset=i) for i in range(3)]
    for record in alone:  # the usual batch of one: carried, one statement each
        await applier.apply(await _ready(runtime, record))
    together = [Record(plain_notice(T0), offset=10 + i) for i in range(3)]
    items = [await _ready(runtime, record) for record in together]
    handed = _deadlines(runtime, monkeypatch)
    before = applier.processed_total

    with round_trips(runtime.engine) as sent:
        assert await applier.apply_batch(items) == []
        await _settle()

    # The three openings with their claims in one round trip, committed by PostgreSQL at
    # the pipeline's Sync: no BEGIN, no inbox INSERT of its own, no COMMIT.
    assert sent == ["WITH"], sent
    assert applier.processed_total == before + 3
    assert len(handed) == 3, "each new alert's deadline handed to the escalation worker"
    for one, other, item in zip(alone, together, items, strict=True):
        assert await opening_written(runtime.deps, other.data, other.message_id) == OPENED
        assert await _shape(runtime, other.data) == await _shape(runtime, one.data)
        # Each opening was built under its own message's correlation id.
        assert await _correlations(runtime, other.data) == {item.envelope.correlation_id}


async def test_a_notice_that_has_its_alert_takes_the_slow_path_alone(
    runtime: RouterRuntime,
) -> None:
    applier = runtime.consumer.applier
    known = plain_notice(T0)
    await applier.apply(await _ready(runtime, Record(known, offset=1)))
    # Intake re-sent the notice under another message id, between two new notices.
    resent = Record(known, offset=2)
    first, last = Record(plain_notice(T0), offset=3), Record(plain_notice(T0), offset=4)
    items = [await _ready(runtime, r) for r in (first, resent, last)]

    statements = record_statements(runtime.engine)
    with round_trips(runtime.engine) as sent:
        assert await applier.apply_batch(items) == []
        await _settle()

    # The run's openings together, committed; then the re-sent one, left by them, is
    # applied as usual: claimed, its opening tried, its alert read (locked, through
    # SQLAlchemy, which the round trips' log does not show) and left be.
    assert sent == ["WITH", "BEGIN", "INSERT", "WITH", "COMMIT"], sent
    reads = [s for s in statements if s.startswith("SELECT")]
    assert len(reads) == 1, statements
    assert reads[0].startswith("SELECT alerts.id"), reads
    assert await opening_written(runtime.deps, first.data, first.message_id) == OPENED
    assert await opening_written(runtime.deps, last.data, last.message_id) == OPENED
    assert await opening_written(runtime.deps, known, resent.message_id) == OPENED


async def test_one_notice_twice_in_a_run_opens_once_and_the_second_is_a_duplicate(
    runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    notice = plain_notice(T0)
    # Intake re-sent the notice under another message id, into the same batch.
    first, again = Record(notice, offset=1), Record(notice, offset=2)
    items = [await _ready(runtime, r) for r in (first, again)]
    handed = _deadlines(runtime, monkeypatch)

    with structlog.testing.capture_logs() as logs:
        assert await runtime.consumer.applier.apply_batch(items) == []
        await _settle()

    assert await opening_written(runtime.deps, notice, first.message_id) == OPENED
    assert await opening_written(runtime.deps, notice, again.message_id) == OPENED
    assert len(handed) == 1, "one new alert, one deadline"
    # The first committed with the run before the second was applied.
    assert [e["event"] for e in logs if e["event"].startswith("alert.")] == [
        "alert.triggered",
        "alert.duplicate_notice",
    ]


async def test_a_changed_directory_sends_the_run_down_the_slow_path(
    runtime: RouterRuntime,
) -> None:
    await add_spoc_then_backup(
        runtime.deps, spoc=SPOC, backup=BACKUP, version=2, wait_s=120, at=T0
    )  # put in by another router: this one knows 1
    records = [Record(plain_notice(T0), offset=i) for i in range(2)]
    items = [await _ready(runtime, r) for r in records]

    with round_trips(runtime.engine) as sent:
        assert await runtime.consumer.applier.apply_batch(items) == []
        await _settle()

    # Neither usual opening went in with its claim (the directory in force changed), nor
    # in the usual path's run: each then read its alert and the directory, and opened
    # from version 2.
    assert sent.count("WITH") == 2, sent
    assert sent[:4] == ["WITH", "BEGIN", "INSERT", "WITH"], sent
    for record in records:
        assert await opening_written(runtime.deps, record.data, record.message_id) == OPENED
        async with runtime.deps.unit_of_work() as uow:
            found = await uow.alerts.for_notice(record.data.notice_id)
        assert found is not None
        assert found.snapshot.directory_version == 2
    latest = runtime.deps.known_directory.latest
    assert latest is not None
    assert latest.version == 2


async def test_a_redelivered_batch_changes_nothing(runtime: RouterRuntime) -> None:
    applier = runtime.consumer.applier
    records = [Record(plain_notice(T0), offset=i) for i in range(3)]
    assert await applier.apply_batch([await _ready(runtime, r) for r in records]) == []
    shapes = [await _shape(runtime, r.data) for r in records]
    processed = applier.processed_total

    again = [await _ready(runtime, r) for r in records]  # the same messages
    with round_trips(runtime.engine) as sent:
        assert await applier.apply_batch(again) == []
        await _settle()

    # The carried openings wrote nothing (every claim recorded), and the usual path's
    # claim found them all duplicates: no opening of its own.
    assert sent == ["WITH", "BEGIN", "INSERT", "COMMIT"], sent
    assert applier.processed_total == processed
    for record, shape in zip(records, shapes, strict=True):
        assert await opening_written(runtime.deps, record.data, record.message_id) == OPENED
        assert await _shape(runtime, record.data) == shape


async def test_a_failing_run_fails_the_batch_and_each_is_applied_alone(
    runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def failing() -> DirectStatement:
        calls.append("run")
        return DirectStatement(lambda: sa.text("SELECT 1 / 0 AS id"))

    monkeypatch.setattr(alert_repository, "open_alert_direct", failing)
    # Not carried with its claims (as behind another event's message in a batch).
    monkeypatch.setattr(_route(runtime), "carry_run", None)
    applier = runtime.consumer.applier
    records = [Record(plain_notice(T0), offset=i) for i in range(3)]

    assert await applier.apply_batch([await _ready(runtime, r) for r in records]) == []

    # The run's statement failed once; each message was then applied alone on its first
    # try (its opening carried with its claim), none charged a try or dead-lettered.
    assert calls == ["run"]
    assert runtime.consumer.dead_lettered_total == 0
    for record in records:
        assert await opening_written(runtime.deps, record.data, record.message_id) == OPENED


async def test_a_duplicate_in_a_carried_run_does_nothing_and_the_others_open(
    runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    applier = runtime.consumer.applier
    seen = Record(plain_notice(T0), offset=1)
    await applier.apply(await _ready(runtime, seen))
    shape = await _shape(runtime, seen.data)
    # The same message again (a relay's second publish), between two new notices.
    first, last = Record(plain_notice(T0), offset=2), Record(plain_notice(T0), offset=3)
    items = [await _ready(runtime, r) for r in (first, seen, last)]
    handed = _deadlines(runtime, monkeypatch)
    before = applier.processed_total

    with round_trips(runtime.engine) as sent, structlog.testing.capture_logs() as logs:
        assert await applier.apply_batch(items) == []
        await _settle()

    # The run's openings with their claims (the duplicate's wrote nothing: its claim is
    # recorded); then the duplicate alone, as usual: its claim finds it, nothing more.
    assert sent == ["WITH", "BEGIN", "INSERT", "COMMIT"], sent
    assert applier.processed_total == before + 2
    assert len(handed) == 2, "the two new alerts' deadlines, none for the duplicate"
    events = [e["event"] for e in logs]
    assert events.count("alert.triggered") == 2
    assert events.count("consumer.duplicate_skipped") == 1
    assert "alert.duplicate_notice" not in events, "the duplicate's opening never ran"
    assert await _shape(runtime, seen.data) == shape
    assert await opening_written(runtime.deps, seen.data, seen.message_id) == OPENED
    for record in (first, last):
        assert await opening_written(runtime.deps, record.data, record.message_id) == OPENED


async def test_a_failing_opening_rolls_back_the_whole_carried_run_with_its_claims(
    runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [Record(plain_notice(T0), offset=i) for i in range(3)]
    items = [await _ready(runtime, r) for r in records]
    opened_many = alert_repository.SqlAlertRepository.open_many

    async def second_fails(self: Any, transitions: Any, **kwargs: Any) -> list[bool]:
        claims = kwargs.pop("claims", None)
        if claims is not None:  # the carried run: its second claim breaks NOT NULL
            claims = [claims[0], claims[1]._replace(topic=None), *claims[2:]]
        return await opened_many(self, transitions, claims=claims, **kwargs)

    monkeypatch.setattr(alert_repository.SqlAlertRepository, "open_many", second_fails)
    # What the run left once it failed, before any message is applied alone.
    left: list[list[int]] = []
    one_by_one = runtime.consumer.applier._one_by_one

    async def looked_at_first(*args: Any, **kwargs: Any) -> list[Exception]:
        for record in records:
            left.append(await opening_written(runtime.deps, record.data, record.message_id))
        return await one_by_one(*args, **kwargs)

    monkeypatch.setattr(runtime.consumer.applier, "_one_by_one", looked_at_first)

    with (
        round_trips(runtime.engine) as sent,
        structlog.testing.capture_logs() as logs,
    ):
        assert await runtime.consumer.applier.apply_batch(items) == []
        await _settle()

    # The first opening went in before the second failed, in the same implicit
    # transaction: rolled back with it, claim and all. Nothing of the run was left.
    assert sent[0] == "WITH", sent
    assert left == [[0, 0, 0, 0, 0]] * 3
    (failed,) = [e for e in logs if e["event"] == "consumer.batch_failed"]
    assert failed["error_type"] == "NotNullViolationError"
    assert failed["failed_message_id"] is None, "no handler's try was spent"
    # Then each was applied alone on its first try (carried with its claim): none
    # charged a try, none dead-lettered.
    assert runtime.consumer.dead_lettered_total == 0
    assert not [e for e in logs if e["event"] == "consumer.retrying"]
    for record in records:
        assert await opening_written(runtime.deps, record.data, record.message_id) == OPENED
