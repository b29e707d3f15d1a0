"""Two submissions of one reference racing on PostgreSQL, without any lock on the reference.

The first one's transaction stays open while the second runs: the second's INSERT waits
on the unique index, writes nothing once the first commits, and answers as a retry of
the first (same notice, replayed), never with an error and never with a second notice.
A first one that rolls back leaves the reference to the second.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from services.common.auth import Principal, Role
from services.common.db import make_engine
from services.intake import notices
from services.intake.notices.commands import NoticeSubmission
from services.intake.notices.guards import NoticeResult
from services.intake.unit_of_work import IntakeUnitOfWork
from tests.integration.intake.intake_support import Intake, notice_body
from tests.support.kafka_io import wait_for

FIELD_OFFICE = Principal(
    token_id="t-race", name="Race office", role=Role.FIELD_OFFICE, subject="fo"
)

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def _submit(intake: Intake, uow: IntakeUnitOfWork, body: NoticeSubmission) -> NoticeResult:
    return await notices.submit_notice(
        uow,
        deps=intake.deps,
        principal=FIELD_OFFICE,
        submission=body,
        idempotency_key=None,
        signed=None,
        now=datetime.now(UTC),
    )


async def _waiting_on_a_lock(intake: Intake) -> bool:
    engine = make_engine(intake.settings, "intake")
    try:
        async with engine.connect() as conn:
            waiting = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
    finally:
        await engine.dispose()
    return bool(waiting)


async def _second_waits_for_first(
    intake: Intake, *, commit_first: bool, lone: bool = False
) -> NoticeResult:
    body = NoticeSubmission.model_validate(notice_body("RACE-1"))
    async with intake.deps.unit_of_work() as first:
        first_result = await _submit(intake, first, body)
        assert not first_result.replayed

        async def second() -> NoticeResult:
            unit_of_work = intake.deps.unit_of_work()
            if lone:  # as the route opens it: no session until the look-up after the wait
                unit_of_work.lone_write_commits()
            async with unit_of_work as uow:
                result = await _submit(intake, uow, body)
                await uow.commit()
                return result

        racing = asyncio.create_task(second())
        # The second blocks on the unique index while the first is open.
        await wait_for(lambda: _waiting_on_a_lock(intake), timeout=30)
        assert not racing.done()
        if commit_first:
            await first.commit()
    result = await asyncio.wait_for(racing, timeout=30)
    if commit_first:
        assert result.notice.id == first_result.notice.id
    return result


@pytest.mark.parametrize("lone", [False, True], ids=["in-session", "sessionless"])
async def test_the_second_of_two_racing_submissions_answers_as_a_retry(
    intake: Intake, lone: bool
) -> None:
    result = await _second_waits_for_first(intake, commit_first=True, lone=lone)
    assert result.replayed
    assert await intake.count("notices") == 1
    assert await intake.count("notice_versions") == 1
    assert await intake.count("audit_log") == 1  # sealed first: nothing left pending
    assert await intake.events() == ["notice.received"]


@pytest.mark.parametrize("lone", [False, True], ids=["in-session", "sessionless"])
async def test_a_first_submission_that_rolls_back_leaves_the_reference(
    intake: Intake, lone: bool
) -> None:
    result = await _second_waits_for_first(intake, commit_first=False, lone=lone)
    assert not result.replayed
    rows = await intake.rows("notices")
    assert [row["id"] for row in rows] == [result.notice.id]
    assert await intake.count("notice_versions") == 1
    assert await intake.events() == ["notice.received"]
