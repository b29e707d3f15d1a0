"""Plain submissions that find intake's writers busy: written together, answered alone.

services/intake/grouped_writes.py: while fewer than `intake_group_writers` writes are in
flight a submission's statement goes alone, as before; one that finds them all busy
waits, and the next writer to finish sends every waiting one as executions of the one
prepared statement pipelined in one round trip (asyncpg's `fetchmany`), one implicit
transaction committed at its Sync. Here the one writer is held busy by a submission
whose INSERT waits on a table lock another connection holds; the others queue behind
it (counted, not timed), and the lock's release lets the writer go and take them.
Round trips are counted on the wire (asyncpg's query log: a pipelined `fetchmany` is
logged once, BEGIN and COMMIT would be logged too); one transaction is read from the
rows' `xmin`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from services.common.db import asyncpg_dsn, component_url
from services.intake.config import IntakeSettings
from services.intake.grouped_writes import GroupedWrites
from tests.integration.intake.intake_support import (
    OUTBOX_LEDGER,
    Intake,
    notice_body,
    run_intake,
)
from tests.support.kafka_io import wait_for
from tests.support.statements import round_trips

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

GROUP = 4


@pytest.fixture
async def intake(intake_settings: Callable[..., IntakeSettings]) -> AsyncIterator[Intake]:
    """Intake with one writer: a second submission in flight waits for it."""
    async with run_intake(intake_settings(intake_group_writers=1)) as harness:
        yield harness


def _writes(intake: Intake) -> GroupedWrites:
    writes = intake.deps.writes
    assert writes is not None  # PostgreSQL
    return writes


async def _connect(settings: IntakeSettings) -> asyncpg.Connection:
    url = component_url(settings, "intake")
    return await asyncpg.connect(asyncpg_dsn(url), server_settings={"search_path": "intake"})


async def _waiting_on_the_lock(settings: IntakeSettings) -> bool:
    conn = await _connect(settings)
    try:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    finally:
        await conn.close()
    return bool(waiting)


@asynccontextmanager
async def _writer_held(intake: Intake) -> AsyncIterator[asyncio.Task[httpx.Response]]:
    """The one writer busy with a submission (returned, as a task) whose INSERT waits on a
    lock of the notices table; the lock is released when the block ends."""
    locker = await _connect(intake.settings)
    transaction = locker.transaction()
    await transaction.start()
    try:
        await locker.execute("LOCK TABLE notices IN SHARE MODE")
        first = asyncio.ensure_future(intake.submit(notice_body()))
        await wait_for(lambda: _waiting_on_the_lock(intake.settings), timeout=30)
        yield first
    finally:
        await transaction.rollback()
        await locker.close()


async def _queued(
    intake: Intake, bodies: list[dict[str, Any]]
) -> tuple[httpx.Response, list[httpx.Response], list[str]]:
    """`bodies` submitted while the writer is held, each waiting for it in turn; then released.
    The held submission's answer, theirs in order, and the round trips sent meanwhile."""
    writes = _writes(intake)
    waited = writes.waited
    with round_trips(_writes(intake).engine) as sent:
        async with _writer_held(intake) as first:
            queued = []
            for body in bodies:  # one at a time: they wait in this order
                queued.append(asyncio.ensure_future(intake.submit(body)))
                count = len(queued)

                async def its_turn_waits(count: int = count) -> bool:
                    return writes.waited - waited == count

                await wait_for(its_turn_waits, timeout=30)
        answers = await asyncio.gather(first, *queued)
        await asyncio.sleep(0)  # asyncpg logs a query on the turn after it answered
        trips = list(sent)
    return answers[0], list(answers[1:]), trips


async def _xmins(intake: Intake, ids: list[str]) -> set[int]:
    """The transaction ids that wrote these notices."""
    conn = await _connect(intake.settings)
    try:
        rows = await conn.fetch("SELECT xmin::text::bigint FROM notices WHERE id = ANY($1)", ids)
    finally:
        await conn.close()
    return {row[0] for row in rows}


async def test_submissions_waiting_for_the_writer_go_in_one_round_trip_and_one_commit(
    intake: Intake,
) -> None:
    bodies = [notice_body() for _ in range(GROUP)]
    before = await intake.counts()

    first, answers, trips = await _queued(intake, bodies)

    assert first.status_code == 201, first.text
    assert [a.status_code for a in answers] == [201] * GROUP, [a.text for a in answers]
    # Each answer is its own notice, as read back alone afterwards.
    assert [a.json()["reference"] for a in answers] == [b["reference"] for b in bodies]
    ids = [a.json()["id"] for a in answers]
    assert len(set(ids)) == GROUP
    for answer in answers:
        shown = await intake.client.get(
            f"/v1/notices/{answer.json()['id']}", headers=intake.auth("field_office")
        )
        assert shown.json() == answer.json()
    # The held statement, then the group's GROUP statements in one pipelined round trip,
    # one implicit transaction (one xmin, below). The BEGIN and COMMIT of a session of
    # intake's own background workers may fall in the window (seen under load): left out.
    assert [trip for trip in trips if trip not in ("BEGIN", "COMMIT")] == ["WITH", "WITH"]
    assert _writes(intake).grouped == GROUP
    assert len(await _xmins(intake, ids)) == 1
    assert await _xmins(intake, [first.json()["id"]]) != await _xmins(intake, ids)
    # Each with its version, audit entry and notice.received, as written alone.
    after = await intake.counts()
    assert {table: after[table] - before[table] for table in after} == {
        "notices": GROUP + 1,
        "notice_versions": GROUP + 1,
        OUTBOX_LEDGER: GROUP + 1,
        "audit_log": GROUP + 1,
        "idempotency_keys": 0,
    }


async def test_a_reference_twice_in_a_group_answers_as_two_in_a_row(intake: Intake) -> None:
    same = notice_body()
    other_content = {**same, "summary": "Another summary under the same reference."}
    bodies = [same, notice_body(), dict(same), other_content, notice_body()]
    before = await intake.counts()

    _, answers, trips = await _queued(intake, bodies)

    # The first of the reference is written; the same content again is its retry (200,
    # the same notice); other content under it is refused; the others are unaffected.
    statuses = [a.status_code for a in answers]
    assert statuses == [201, 201, 200, 409, 201], [a.text for a in answers]
    assert answers[2].json() == answers[0].json()
    assert answers[3].json()["notice_id"] == answers[0].json()["id"]
    # The held statement and the group's, then the retry's and the conflict's reads
    # (background BEGIN and COMMIT left out, as above).
    written = [trip for trip in trips if trip not in ("BEGIN", "COMMIT")]
    assert written[:2] == ["WITH", "WITH"], trips
    after = await intake.counts()
    assert after["notices"] - before["notices"] == 4  # the held one and three


async def test_a_lone_submission_goes_at_once_without_a_group(intake: Intake) -> None:
    writes = _writes(intake)
    with round_trips(_writes(intake).engine) as sent:
        created = await intake.created()
        await asyncio.sleep(0)
        trips = list(sent)

    assert created["reference"]
    assert trips == ["WITH"]
    assert (writes.waited, writes.grouped) == (0, 0)


# -- the group's failure, on a statement of its own ----------------------------------------


@pytest.fixture
async def probe(intake: Intake) -> AsyncIterator[asyncpg.Connection]:
    """A table of unique ids in intake's schema, dropped afterwards."""
    conn = await _connect(intake.settings)
    await conn.execute("CREATE TABLE grouped_probe (id integer PRIMARY KEY)")
    try:
        yield conn
    finally:
        await conn.execute("DROP TABLE grouped_probe")
        await conn.close()


_INSERT = "INSERT INTO grouped_probe (id) VALUES ($1) RETURNING id"


async def _outcome(write: Awaitable[Any]) -> Any:
    try:
        return (await write)["id"]
    except asyncpg.UniqueViolationError:
        return "duplicate"


async def _one_writer_held(
    intake: Intake, probe: asyncpg.Connection
) -> tuple[GroupedWrites, asyncpg.transaction.Transaction, asyncio.Future[Any]]:
    """Grouped writes with one writer, held by the probe's lock on its first statement
    (id 0): what comes next waits. Rolling the transaction back lets it go."""
    writes = GroupedWrites(_writes(intake).engine, writers=1)
    transaction = probe.transaction()
    await transaction.start()
    await probe.execute("LOCK TABLE grouped_probe IN SHARE MODE")
    held = asyncio.ensure_future(writes.fetchrow(_INSERT, [0]))
    await wait_for(lambda: _waiting_on_the_lock(intake.settings), timeout=30)
    return writes, transaction, held


async def test_a_group_that_fails_writes_each_alone_with_its_own_answer(
    intake: Intake, probe: asyncpg.Connection
) -> None:
    writes, transaction, held = await _one_writer_held(intake, probe)
    ids = [1, 2, 2, 3]
    queued = [asyncio.ensure_future(_outcome(writes.fetchrow(_INSERT, [n]))) for n in ids]

    async def all_waiting() -> bool:
        return writes.waiting == len(ids)

    await wait_for(all_waiting, timeout=30)
    await transaction.rollback()
    outcomes = await asyncio.gather(_outcome(held), *queued)

    # The group's second 2 failed it whole; each then went alone: one 2 is a duplicate,
    # as it would have been alone, and nothing else is lost.
    assert outcomes[0] == 0
    assert sorted(outcomes[1:], key=str) == sorted([1, 2, "duplicate", 3], key=str)
    assert writes.grouped == 0
    stored = await probe.fetch("SELECT id FROM grouped_probe ORDER BY id")
    assert [row["id"] for row in stored] == [0, 1, 2, 3]


async def test_a_waiting_statement_whose_caller_gave_up_is_left_out(
    intake: Intake, probe: asyncpg.Connection
) -> None:
    writes, transaction, held = await _one_writer_held(intake, probe)
    given_up = asyncio.ensure_future(writes.fetchrow(_INSERT, [1]))
    kept = [asyncio.ensure_future(writes.fetchrow(_INSERT, [n])) for n in (2, 3)]

    async def all_waiting() -> bool:
        return writes.waiting == 3

    await wait_for(all_waiting, timeout=30)
    given_up.cancel()
    await transaction.rollback()
    rows = await asyncio.gather(held, *kept)

    assert [row["id"] for row in rows] == [0, 2, 3]
    assert writes.grouped == 2
    stored = await probe.fetch("SELECT id FROM grouped_probe ORDER BY id")
    assert [row["id"] for row in stored] == [0, 2, 3]
