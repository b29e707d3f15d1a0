"""The hash-chained audit log and `aviso audit verify`, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from itertools import pairwise

import pytest
import sqlalchemy as sa
import typer
from sqlalchemy import event
from typer.testing import CliRunner, Result

from services.common import settings as common_settings
from services.intake.audit import ChainReport, verify_chain
from services.intake.cli import commands
from services.intake.config import IntakeSettings
from services.intake.worker import seal_audit
from tests.integration.intake.intake_support import (
    Intake,
    notice_body,
    revision_body,
    run_intake,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _report(intake: Intake) -> ChainReport:
    await seal_audit(intake.deps)
    async with intake.deps.unit_of_work() as uow:
        return await verify_chain(uow.session, key=intake.deps.audit_key)


async def _exercise(intake: Intake) -> str:
    body = notice_body()
    notice_id = (await intake.created(body))["id"]
    url = f"/v1/notices/{notice_id}"
    auth = intake.auth("field_office")
    await intake.client.post(
        f"{url}/update", json=revision_body(body, summary="Later."), headers=auth
    )
    await intake.client.get(url, headers=intake.auth("contact"))
    await intake.client.get(url, headers=intake.auth("ops"))  # metadata: not audited
    await intake.client.post(f"{url}/cancel", json={"reason": "superseded"}, headers=auth)
    return str(notice_id)


async def test_every_change_and_restricted_read_is_chained(intake: Intake) -> None:
    notice_id = await _exercise(intake)
    entries = sorted(await intake.rows("audit_log"), key=lambda row: row["seq"])
    assert [e["action"] for e in entries] == [
        "notice.created",
        "notice.updated",
        "notice.restricted_read",
        "notice.cancelled",
    ]
    assert {e["notice_id"] for e in entries} == {notice_id}
    assert [e["actor_role"] for e in entries] == [
        "field_office",
        "field_office",
        "contact",
        "field_office",
    ]
    for earlier, later in pairwise(entries):
        assert later["prev_hash"] == earlier["entry_hash"]
    report = await _report(intake)
    assert report.intact
    assert report.entries == 4
    assert report.head_hash == entries[-1]["entry_hash"]


async def test_verify_names_the_first_broken_link(intake: Intake) -> None:
    await _exercise(intake)
    await _exercise(intake)
    await seal_audit(intake.deps)
    engine = intake.app.state.runtime.engine

    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_log SET action = 'notice.read' WHERE seq = 3"))
    report = await _report(intake)
    assert (report.broken_at, report.entries) == (3, 2)
    assert "altered" in (report.problem or "")

    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE audit_log SET action = 'notice.restricted_read' WHERE seq = 3")
        )
        await conn.execute(sa.text("DELETE FROM audit_log WHERE seq = 5"))
    report = await _report(intake)
    assert report.broken_at == 5
    assert "missing" in (report.problem or "")


async def test_verify_notices_entries_cut_off_the_end(intake: Intake) -> None:
    await _exercise(intake)
    await seal_audit(intake.deps)
    async with intake.app.state.runtime.engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM audit_log WHERE seq = 4"))
    report = await _report(intake)
    assert report.broken_at == 4
    assert report.entries == 3


@pytest.fixture
def cli_env(intake: Intake, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    """The `aviso audit` command reading this test's intake database."""
    monkeypatch.setenv("AVISO_VAR_DIR", str(intake.settings.var_dir))
    if intake.settings.database_url:
        monkeypatch.setenv("DATABASE_URL", intake.settings.database_url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.delenv("AVISO_DATABASE_URL", raising=False)
    _clear_settings_cache()
    app = typer.Typer()
    app.add_typer(commands["audit"], name="audit")
    yield app
    _clear_settings_cache()


def _clear_settings_cache() -> None:
    # Settings are read once per process; the command must read this test's environment.
    common_settings._cached.cache_clear()


async def _verify(app: typer.Typer) -> Result:
    # The command runs its own event loop, so it runs in a thread like a real process would.
    return await asyncio.to_thread(CliRunner().invoke, app, ["audit", "verify"])


async def test_aviso_audit_verify(intake: Intake, cli_env: typer.Typer) -> None:
    await _exercise(intake)
    await seal_audit(intake.deps)
    ok = await _verify(cli_env)
    assert ok.exit_code == 0, ok.output
    assert "audit chain intact: 4 entries" in ok.output

    async with intake.app.state.runtime.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE audit_log SET actor_role = 'admin' WHERE seq = 2"))
    broken = await _verify(cli_env)
    assert broken.exit_code == 1
    assert "broken at entry 2" in broken.output


async def test_concurrent_requests_all_reach_one_unbroken_chain(intake: Intake) -> None:
    # No request locks the chain: 24 submissions at once, four of them with one reference.
    shared = notice_body()
    bodies = [notice_body() for _ in range(20)] + [shared] * 4
    responses = await asyncio.gather(*(intake.submit(body) for body in bodies))
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    # The four copies of one reference are one notice: its key lock made them wait in turn.
    assert len({r.json()["id"] for r in responses[20:]}) == 1
    assert sum(r.status_code == 201 for r in responses) == 21
    entries = await intake.rows("audit_log")
    assert sorted(e["action"] for e in entries) == ["notice.created"] * 21
    report = await _report(intake)
    assert report.intact, report.problem
    assert (report.entries, report.pending) == (21, 0)


async def test_the_chain_does_not_verify_without_its_key(intake: Intake) -> None:
    await _exercise(intake)
    await seal_audit(intake.deps)
    async with intake.deps.unit_of_work() as uow:
        report = await verify_chain(uow.session, key=b"not-the-audit-key-0123456789abcdef")
    assert report.broken_at == 1
    assert "altered" in (report.problem or "")


# PostgreSQL only: SQLite serialises writers, so no entry can commit out of order there.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_entry_committed_late_is_sealed_after_the_ones_before_it(
    intake: Intake,
) -> None:
    assert intake.settings.database_url
    engine = intake.app.state.runtime.engine
    insert = sa.text(
        "INSERT INTO audit_pending (entry_id, occurred_at, action, details) "
        "VALUES (:entry_id, now(), :action, '{}')"
    )
    async with engine.connect() as slow:
        late = await slow.begin()
        # Takes the lower id, but commits only after a sealer ran past it.
        await slow.execute(insert, {"entry_id": "late", "action": "test.late"})
        async with engine.begin() as fast:
            await fast.execute(insert, {"entry_id": "early", "action": "test.early"})
        assert await seal_audit(intake.deps) == 1
        await late.commit()
    assert await seal_audit(intake.deps) == 1
    entries = sorted(await intake.rows("audit_log"), key=lambda row: row["seq"])
    assert [e["entry_id"] for e in entries] == ["early", "late"]
    assert (await _report(intake)).intact


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_sealed_batch_is_two_statements_on_postgres(
    intake_settings: Callable[..., IntakeSettings],
) -> None:
    # The background sealer waits an hour: this test's seal_audit takes the whole batch.
    async with run_intake(intake_settings(intake_audit_seal_interval_s=3600.0)) as intake:
        await _exercise(intake)
        await _exercise(intake)
        statements: list[tuple[str, bool]] = []

        def seen(
            _conn: object,
            _cursor: object,
            statement: str,
            _params: object,
            _ctx: object,
            many: bool,
        ) -> None:
            statements.append((" ".join(statement.split()), many))

        engine = intake.app.state.runtime.engine.sync_engine
        event.listen(engine, "before_cursor_execute", seen)
        try:
            assert await seal_audit(intake.deps) == 8
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        # The head and the pending entries read together; the log's INSERT, the pending
        # rows' DELETE and the head's UPDATE in one more statement (was five statements).
        # (The relay's statements run on the same engine meanwhile: left out.)
        (read, _), (write, many) = [(sql, m) for sql, m in statements if "audit_" in sql]
        assert "FROM audit_chain_head" in read
        assert "audit_pending" in read
        assert "INSERT INTO audit_log" in write
        assert "DELETE FROM audit_pending" in write
        assert "UPDATE audit_chain_head" in write
        assert not many  # one statement, not an executemany of one per entry
        report = await _report(intake)
    assert report.intact
    assert report.entries == 8
    assert report.pending == 0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_sealers_racing_chain_every_entry_once(
    intake_settings: Callable[..., IntakeSettings],
) -> None:
    # Two instances' sealers at once (the background one waits an hour): whoever writes
    # second from the same head writes nothing, and what is left is sealed next round.
    async with run_intake(intake_settings(intake_audit_seal_interval_s=3600.0)) as intake:
        for _ in range(3):
            await _exercise(intake)
        counts = await asyncio.gather(*(seal_audit(intake.deps, batch_size=3) for _ in range(4)))
        while await seal_audit(intake.deps):
            pass
        entries = await intake.rows("audit_log")
        report = await _report(intake)
    assert sum(counts) == 12  # each entry sealed by one of them
    assert sorted(e["seq"] for e in entries) == list(range(1, 13))
    assert len({e["entry_id"] for e in entries}) == 12  # no entry chained twice
    assert report.intact
    assert report.pending == 0
