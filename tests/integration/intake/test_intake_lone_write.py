"""A plain submission on PostgreSQL: its one statement commits by itself, no BEGIN/COMMIT.

The route opens the submission's unit of work with `lone_write_commits`: a notice with
neither Idempotency-Key nor signature is one statement (fast_writes.py), sent without
BEGIN, so PostgreSQL commits it as it answers and the unit of work's commit sends
nothing. With a key the lock comes first and begins the transaction: then every write
still waits for the unit of work's commit. A unit of work opened without the option
(every other caller) keeps the statement in its transaction
(test_intake_submission_race.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from services.common.auth import Principal, Role
from services.common.db import make_engine
from services.common.direct import driver_connection
from services.intake import notices
from services.intake.notices.commands import NoticeSubmission
from services.intake.notices.guards import NoticeResult
from services.intake.unit_of_work import IntakeUnitOfWork
from tests.integration.intake.intake_support import Intake, notice_body
from tests.support.kafka_io import wait_for

FIELD_OFFICE = Principal(
    token_id="t-lone", name="Lone office", role=Role.FIELD_OFFICE, subject="fo"
)

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


class _Queries:
    """Every statement asyncpg sends on one connection (BEGIN and COMMIT included)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, record: Any) -> None:
        self.sent.append(record.query.split()[0].upper())


async def _submit(
    intake: Intake, uow: IntakeUnitOfWork, reference: str, *, key: str | None = None
) -> NoticeResult:
    return await notices.submit_notice(
        uow,
        deps=intake.deps,
        principal=FIELD_OFFICE,
        submission=NoticeSubmission.model_validate(notice_body(reference)),
        idempotency_key=key,
        signed=None,
        now=datetime.now(UTC),
    )


async def _visible_elsewhere(intake: Intake, notice_id: str) -> bool:
    """Whether another connection (another transaction) sees the notice."""
    engine = make_engine(intake.settings, "intake")
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                sa.text("SELECT count(*) FROM notices WHERE id = :id"), {"id": notice_id}
            )
    finally:
        await engine.dispose()
    return bool(found)


async def test_a_plain_submission_is_one_statement_committed_as_it_answers(intake: Intake) -> None:
    queries = _Queries()
    async with intake.deps.unit_of_work().lone_write_commits() as uow:
        driver = await driver_connection(uow.session, begin=False)
        driver.add_query_logger(queries)
        try:
            result = await _submit(intake, uow, "LONE-1")
            # Durable before the unit of work commits: it was a transaction of its own.
            assert not driver.is_in_transaction()
            assert await _visible_elsewhere(intake, result.notice.id)
            await uow.commit()
            await asyncio.sleep(0)  # asyncpg hands query records over on the next loop turn
        finally:
            driver.remove_query_logger(queries)
    assert queries.sent == ["WITH"]  # no BEGIN, no COMMIT
    assert not result.replayed
    assert await intake.count("notice_versions") == 1
    assert await intake.events() == ["notice.received"]
    assert await intake.count("audit_log") == 1


async def test_a_plain_submission_borrows_one_connection_and_its_session_none(
    intake: Intake,
) -> None:
    """The session never checks a connection out: its begin, commit and close send nothing
    and hold nothing; the statement runs on one connection borrowed from the pool."""
    async with intake.deps.unit_of_work() as probe:
        engine = probe.session.get_bind()
    task = asyncio.current_task()
    borrowed: list[object] = []
    session_begins: list[Session] = []

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if asyncio.current_task() is task:  # not the relay's or the sealer's
            borrowed.append(dbapi_connection)

    def on_begin(session: Session, _transaction: Any, _connection: Any) -> None:
        session_begins.append(session)

    event.listen(engine.pool, "checkout", on_checkout)
    event.listen(Session, "after_begin", on_begin)
    try:
        async with intake.deps.unit_of_work().lone_write_commits() as uow:
            result = await _submit(intake, uow, "LONE-BORROWED")
            assert len(borrowed) == 1
            # Committed by itself on the borrowed connection, already back in the pool.
            assert await _visible_elsewhere(intake, result.notice.id)
            await uow.commit()
    finally:
        event.remove(engine.pool, "checkout", on_checkout)
        event.remove(Session, "after_begin", on_begin)
    assert session_begins == []
    assert len(borrowed) == 1
    assert not result.replayed
    assert await intake.events() == ["notice.received"]
    assert await intake.count("audit_log") == 1


async def test_with_an_idempotency_key_the_writes_wait_for_the_commit(intake: Intake) -> None:
    async with intake.deps.unit_of_work().lone_write_commits() as uow:
        result = await _submit(intake, uow, "LONE-2", key="batch-1/item-1")
        driver = await driver_connection(uow.session)
        assert driver.is_in_transaction()
        # The key's lock began the transaction: nothing is visible before the commit.
        assert not await _visible_elsewhere(intake, result.notice.id)
        await uow.commit()
    assert await _visible_elsewhere(intake, result.notice.id)
    assert await intake.count("idempotency_keys") == 1


async def test_a_retry_by_reference_answers_the_recorded_notice(intake: Intake) -> None:
    body = notice_body("LONE-3")
    first = await intake.created(body)
    again = await intake.submit(body)
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert await intake.count("notices") == 1


class _SessionsOpened:
    """Every intake session created, every session transaction begun, by one task."""

    def __init__(self, intake: Intake, monkeypatch: pytest.MonkeyPatch) -> None:
        self.created: list[AsyncSession] = []
        self.transactions: list[Session] = []
        self._task = asyncio.current_task()
        self._engine = intake.deps.unit_of_work()._factory.kw["bind"]
        created = self.created
        engine, task = self._engine, self._task
        original = AsyncSession.__init__

        def counting(session: AsyncSession, *args: Any, **kwargs: Any) -> None:
            original(session, *args, **kwargs)
            if asyncio.current_task() is task and session.bind is engine:
                created.append(session)

        monkeypatch.setattr(AsyncSession, "__init__", counting)

    def on_transaction(self, session: Session, _transaction: Any) -> None:
        if asyncio.current_task() is self._task and session.bind is self._engine.sync_engine:
            self.transactions.append(session)

    def __enter__(self) -> _SessionsOpened:
        event.listen(Session, "after_transaction_create", self.on_transaction)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(Session, "after_transaction_create", self.on_transaction)


async def test_a_plain_submission_opens_no_session(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the route: no intake session is created, none begins a transaction; the
    201 and the rows are as ever."""
    with _SessionsOpened(intake, monkeypatch) as opened:
        response = await intake.submit(notice_body("LONE-NO-SESSION"))
    assert response.status_code == 201, response.text
    assert opened.created == []
    assert opened.transactions == []
    assert response.headers["location"] == f"/v1/notices/{response.json()['id']}"
    assert await intake.count("notices") == 1
    assert await intake.count("audit_log") == 1


async def test_with_a_key_the_session_opens_for_the_lock(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _SessionsOpened(intake, monkeypatch) as opened:
        response = await intake.submit(notice_body("LONE-KEYED"), **{"Idempotency-Key": "k-1"})
    assert response.status_code == 201, response.text
    assert len(opened.created) == 1
    assert await intake.count("idempotency_keys") == 1


async def test_a_sessionless_commit_runs_its_hooks_and_hands_the_event_over(
    intake: Intake,
) -> None:
    """The after-commit effects and the outbox hand-over to this process's relay run at
    the unit of work's commit (what SQLAlchemy's listeners were given), not before."""
    ran: list[str] = []
    handed: list[str] = []

    def on_commit(session: Session) -> None:
        for _taker, rows, _leased_at in session.info.get("aviso_outbox_handed", ()):
            handed.extend(str(row["event_type"]) for row in rows)

    # First in line: the outbox's own listener pops what it was given.
    event.listen(Session, "after_commit", on_commit, insert=True)
    try:
        async with intake.deps.unit_of_work().lone_write_commits() as uow:
            result = await _submit(intake, uow, "LONE-HOOKS")
            uow.after_commit(lambda: ran.append("effect"))
            assert (ran, handed) == ([], [])
            await uow.commit()
    finally:
        event.remove(Session, "after_commit", on_commit)
    assert ran == ["effect"]
    assert handed == ["notice.received"]

    async def sent() -> bool:
        # Written, then deleted by the relay once Kafka had it.
        written = await intake.events()
        return written == ["notice.received"] and await intake.rows("outbox_messages") == []

    await wait_for(sent, timeout=30)
    assert await _visible_elsewhere(intake, result.notice.id)


async def test_a_sessionless_unit_of_work_left_uncommitted_runs_no_hook(intake: Intake) -> None:
    ran: list[str] = []
    async with intake.deps.unit_of_work().lone_write_commits() as uow:
        result = await _submit(intake, uow, "LONE-DROPPED")
        uow.after_commit(lambda: ran.append("effect"))
    assert ran == []
    # The statement committed by itself, as on the session path (direct.py).
    assert await _visible_elsewhere(intake, result.notice.id)


class _Arguments:
    """The arguments of every statement asyncpg sends on one connection."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def __call__(self, record: Any) -> None:
        self.sent.append(tuple(record.args))


_MIRRORED = (
    "id",
    "source_key",
    "reference",
    "status",
    "received_via",
    "operation_type",
    "public_safety_nexus",
    "window_start",
    "window_end",
    "area",
    "area_code",
    "summary",
    "sent_at",
    "received_at",
    "updated_at",
    "cancel_reason",
)


async def test_a_new_notices_statement_binds_what_its_row_repeats_once(intake: Intake) -> None:
    """The notice's row repeats its first version's fields: the statement carries them once
    (main bound the summary, area and times twice, the notice id three times)."""
    arguments = _Arguments()
    async with intake.deps.unit_of_work().lone_write_commits() as uow:
        driver = await driver_connection(uow.session, begin=False)
        driver.add_query_logger(arguments)
        try:
            result = await _submit(intake, uow, "LONE-ONCE")
            await uow.commit()
            await asyncio.sleep(0)  # asyncpg hands query records over on the next loop turn
        finally:
            driver.remove_query_logger(arguments)
    (sent,) = arguments.sent
    body = notice_body("LONE-ONCE")
    assert sent.count(body["summary"]) == 1
    assert sent.count(body["area"]) == 1
    assert sent.count(body["reference"]) == 1
    # The version's id, the audit entry's and the outbox key (the event's own string).
    assert sent.count(result.notice.id) == 2
    # What the row says is what its version says, as before.
    (notice,) = await intake.rows("notices")
    (version,) = await intake.rows("notice_versions")
    for name in _MIRRORED:
        original = {"id": "notice_id", "updated_at": "received_at"}.get(name, name)
        expected = version.get(original, notice[name])  # source_key and reference: the row's
        assert notice[name] == expected, name
    assert (notice["source_key"], notice["reference"]) == (result.notice.source_key, "LONE-ONCE")
    assert notice["state"] == "received"
    assert notice["current_version"] == 1
