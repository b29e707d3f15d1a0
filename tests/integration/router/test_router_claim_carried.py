"""A lone notice.received on PostgreSQL: the inbox claim rides in router's opening statement.

The consumer hands the claim to router's carrier (services/common/applying.py
`ClaimCarrier`) on a lone record's first try: the claim, the alert, its timeline entries,
outbox rows and the engine's delivery records are one statement sent without BEGIN, so
PostgreSQL commits it as it answers. One round trip where there were four (BEGIN, the
claim, the opening, COMMIT). Counted here on the wire (asyncpg's query log on every
connection the engine hands out, BEGIN and COMMIT included): deterministic, no timing.
A redelivery and a failing statement keep their old behaviour; a batch's leading run
carries its claims in one implicit transaction (test_router_open_runs.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from schemas.notices import NoticeReceived
from schemas.topics import NOTICES
from services.common.applying import Applier, ReadyMessage
from services.common.direct import DirectStatement
from services.router import alerting
from services.router.app import RouterRuntime
from services.router.config import RouterSettings
from services.router.repository import alerts as alert_repository
from services.router.subscribers import register_consumers
from tests.support.alerts import (
    OPENED,
    add_spoc_then_backup,
    opening_written,
    plain_notice,
)
from tests.support.records import FetchedRecord
from tests.support.router_runtime import stopped_router
from tests.support.statements import round_trips

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPOC, BACKUP = uuid.uuid4(), uuid.uuid4()


class Record(FetchedRecord):
    """A notice's record on its topic, as intake's relay publishes it."""

    def __init__(self, data: NoticeReceived, offset: int, *, message_id: str | None = None) -> None:
        super().__init__(data, offset, topic=NOTICES, source="aviso.intake", message_id=message_id)


@pytest.fixture
async def runtime(
    database_url: str | None, make_settings: Callable[..., Any]
) -> AsyncIterator[RouterRuntime]:
    """A router on a migrated database with a directory, its consumers registered, the
    directory in force known (as after its first notice); nothing started."""
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


def _subscription(runtime: RouterRuntime) -> Any:
    (subscription,) = runtime.consumer._subscriptions.values()
    return subscription


async def _ready(runtime: RouterRuntime, record: Record) -> ReadyMessage:
    item = await runtime.consumer._prepare(_subscription(runtime), record)
    assert item is not None
    return item


async def test_a_lone_notice_is_opened_and_claimed_in_one_round_trip(
    runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    notice = plain_notice(T0)
    record = Record(notice, offset=7)
    item = await _ready(runtime, record)
    woken: list[datetime] = []  # the escalation deadline, handed over after the commit
    handed = asyncio.Event()

    def timer_set(at: datetime) -> None:
        woken.append(at)
        handed.set()

    monkeypatch.setattr(runtime.escalation, "timer_set", timer_set)
    applier = runtime.consumer.applier
    before = applier.processed_total

    with round_trips(runtime.engine) as sent:
        await applier.apply(item)
        await asyncio.sleep(0)
    # A few loop turns after the commit, behind the notice's sends (router's notices.py).
    await asyncio.wait_for(handed.wait(), timeout=30)

    # One statement, autocommitted: no BEGIN, no separate inbox INSERT, no COMMIT.
    assert sent == ["WITH"], sent
    assert await opening_written(runtime.deps, notice, record.message_id) == OPENED
    # The after-commit effects ran as after a COMMIT: the escalation deadline, the count.
    assert len(woken) == 1
    assert applier.processed_total == before + 1


async def test_a_redelivered_notice_writes_nothing_and_its_offset_moves_on(
    runtime: RouterRuntime,
) -> None:
    notice = plain_notice(T0)
    first = Record(notice, offset=3)
    again = Record(notice, offset=4, message_id=first.message_id)  # the same message
    processed: list[int] = []

    async def processed_all(_consumer: object, records: Any) -> None:
        processed.extend(r.offset for r in records)

    runtime.consumer.offsets.processed_all = processed_all  # type: ignore[method-assign]
    subscription = _subscription(runtime)
    await runtime.consumer.apply_records(subscription, object(), [first])
    applier = runtime.consumer.applier
    applied = applier.processed_total

    with round_trips(runtime.engine) as sent:
        await runtime.consumer.apply_records(subscription, object(), [again])
        await asyncio.sleep(0)

    assert await opening_written(runtime.deps, notice, first.message_id) == OPENED
    assert applier.processed_total == applied, "skipped as a duplicate"
    assert processed == [3, 4], "both offsets handed on to be committed"
    # The carried statement found the claim and wrote nothing; the usual claim then
    # reported the duplicate.
    assert sent == ["WITH", "BEGIN", "INSERT", "ROLLBACK"], sent


def _failing(calls: list[str], name: str) -> Callable[[], DirectStatement]:
    def build() -> DirectStatement:
        calls.append(name)
        return DirectStatement(lambda: sa.text("SELECT 1 / 0 AS id"))

    return build


async def test_a_failing_opening_is_retried_the_usual_way_then_dead_lettered(
    runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(alert_repository, "open_alert_claiming_direct", _failing(calls, "carried"))
    monkeypatch.setattr(alert_repository, "open_alert_direct", _failing(calls, "usual"))
    letters: list[tuple[str, int]] = []

    async def dead_letter(item: ReadyMessage, _error: BaseException, tries: int) -> None:
        letters.append((item.message_id, tries))

    applier = Applier(
        sessions=runtime.deps.sessions,
        service="router",
        max_attempts=3,
        backoff_s=0.001,
        dead_letter=dead_letter,
    )
    notice = plain_notice(T0)
    record = Record(notice, offset=1)

    await applier.apply(await _ready(runtime, record))

    # The first try carried the claim; its retries took the usual path (BEGIN, claim,
    # the opening in the transaction), which rolled back each time.
    assert calls == ["carried", "usual", "usual"]
    assert letters == [(record.message_id, 3)]
    assert await opening_written(runtime.deps, notice, record.message_id) == [0, 0, 0, 0, 0]


async def test_a_failed_carried_try_is_applied_by_its_retry(
    runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(alert_repository, "open_alert_claiming_direct", _failing(calls, "carried"))
    notice = plain_notice(T0)
    record = Record(notice, offset=1)

    await runtime.consumer.applier.apply(await _ready(runtime, record))

    assert calls == ["carried"]
    assert await opening_written(runtime.deps, notice, record.message_id) == OPENED
    assert runtime.consumer.dead_lettered_total == 0


async def test_a_batch_applies_its_records_in_one_transaction_their_claims_carried(
    runtime: RouterRuntime,
) -> None:
    notices = [plain_notice(T0) for _ in range(3)]
    records = [Record(n, offset=i) for i, n in enumerate(notices)]
    items = [await _ready(runtime, r) for r in records]

    with round_trips(runtime.engine) as sent:
        assert await runtime.consumer.applier.apply_batch(items) == []
        await asyncio.sleep(0)

    # The three openings, each carrying its claim, in one round trip without BEGIN: one
    # implicit transaction, committed at the pipeline's Sync (test_router_open_runs.py).
    assert sent == ["WITH"], sent
    for notice, record in zip(notices, records, strict=True):
        assert await opening_written(runtime.deps, notice, record.message_id) == OPENED
