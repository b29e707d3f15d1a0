"""Opening an alert and recording outcomes on a real database: writes and statements.

A notice's alert is opened without reading the alert or the directory first once the
router knows the directory in force: one guarded INSERT (on PostgreSQL with the timeline
entries in it). These tests count the statements (deterministic, never a timing) and
check every fallback (a duplicate, an update, a new directory) on both back ends.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from schemas.notices import NoticeReceived, NoticeUpdated
from services.common.delivery import Delivered, Settled
from services.common.delivery.records import record_from_row
from services.common.messaging import outbox_messages
from services.router import alerting
from services.router.app import RouterRuntime
from services.router.config import RouterSettings
from services.router.delivery import RouterDeliveryPlan
from services.router.deps import RouterDeps
from services.router.domain import alert_id_for
from services.router.domain.changes import Transition, VersionGuard
from services.router.tables import alert_timeline, alerts, delivery_records
from tests.integration.router.conftest import Sinks
from tests.integration.router.router_support import update
from tests.support.alerts import add_spoc_then_backup, plain_notice, spoc_then_backup
from tests.support.router_runtime import stopped_router
from tests.support.statements import record_statements

pytestmark = [pytest.mark.postgres]

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPOC, BACKUP = uuid.uuid4(), uuid.uuid4()


@pytest.fixture
async def runtime(
    database_url: str | None, make_settings: Callable[..., Any]
) -> AsyncIterator[RouterRuntime]:
    """A router on a migrated database with directory version 1; its engine never runs."""
    settings: RouterSettings = make_settings(
        RouterSettings, database_url=database_url, link_secret="test-link-secret"
    )
    async with stopped_router(settings, at=T0) as runtime:
        await _add_directory(runtime.deps, version=1, wait_s=60)
        yield runtime


async def _add_directory(deps: RouterDeps, *, version: int, wait_s: float) -> None:
    await add_spoc_then_backup(
        deps, spoc=SPOC, backup=BACKUP, version=version, wait_s=wait_s, at=T0
    )


async def _open(deps: RouterDeps, notice: NoticeReceived | NoticeUpdated) -> None:
    async with deps.unit_of_work() as uow:
        await alerting.open_alert(uow, deps=deps, notice=notice)
        await uow.commit()


@contextmanager
def _statements(runtime: RouterRuntime) -> Iterator[list[str]]:
    """The SQL the runtime's engine sent inside the block (read once the block ends)."""
    sent: list[str] = []
    with _by_connection(runtime) as seen:
        yield sent
    sent.extend(sql for _, sql, _ in seen)


async def _scalar(deps: RouterDeps, query: sa.Select[Any]) -> Any:
    async with deps.sessions() as session:
        return (await session.execute(query)).scalar_one()


async def _count(deps: RouterDeps, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    return int(await _scalar(deps, sa.select(sa.func.count()).select_from(table).where(where)))


async def test_a_known_directory_opens_an_alert_without_reading_first(
    runtime: RouterRuntime, database_url: str | None
) -> None:
    deps = runtime.deps
    await _open(deps, plain_notice(T0))  # the first alert reads the directory
    notice = plain_notice(T0)
    with _statements(runtime) as sent:
        await _open(deps, notice)

    reads = [s for s in sent if s.startswith("SELECT") and ("alerts" in s or "directory" in s)]
    assert reads == [], reads
    assert sum(s.startswith(("INSERT INTO alerts", "WITH in_force")) for s in sent) == 1
    separate_timeline = sum(s.startswith("INSERT INTO alert_timeline") for s in sent)
    assert separate_timeline == (1 if database_url is None else 0), sent
    # SQLite accepts the deliveries by the engine's own INSERT; PostgreSQL folds it in.
    separate_accept = sum(s.startswith("INSERT INTO delivery_records") for s in sent)
    assert separate_accept == (1 if database_url is None else 0), sent

    alert_id = str(alert_id_for(notice.notice_id))
    kinds = await _kinds(deps, alert_id)
    assert kinds == ["triggered", "notified", "notified"]
    assert await _count(deps, delivery_records, delivery_records.c.aggregate_id == alert_id) == 2
    triggered = outbox_messages.c.event_type == "alert.triggered"
    assert await _count(deps, outbox_messages, triggered & (outbox_messages.c.key == alert_id)) == 1


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_notices_opening_is_one_statement_on_postgres(runtime: RouterRuntime) -> None:
    """The alert, its timeline entries, its outbox rows and the engine's accept of its
    deliveries: one statement and one round trip (the accept was a second one before)."""
    deps = runtime.deps
    await _open(deps, plain_notice(T0))  # the first alert reads the directory
    notice = plain_notice(T0)
    sent = record_statements(runtime.engine, width=40)
    await _open(deps, notice)
    await asyncio.sleep(0)  # asyncpg reports a query on the loop turn after it answered

    assert len(sent) == 1, sent
    assert sent[0].startswith("WITH in_force"), sent
    alert_id = str(alert_id_for(notice.notice_id))
    assert await _kinds(deps, alert_id) == ["triggered", "notified", "notified"]
    async with deps.sessions() as session:
        rows = await session.execute(
            sa.select(delivery_records.c.channel, delivery_records.c.state).where(
                delivery_records.c.aggregate_id == alert_id
            )
        )
        assert sorted(rows) == [("email", "pending"), ("webhook", "pending")]


async def test_an_opened_alert_reads_back_its_content_and_snapshot_as_built(
    runtime: RouterRuntime,
) -> None:
    """The opening binds the content and the snapshot as JSON text Pydantic wrote
    (PostgreSQL) or as dicts (SQLite): either way the alert reads back as it was built,
    a Spanish summary's letters included."""
    deps = runtime.deps
    await _open(deps, plain_notice(T0))  # the first alert reads the directory
    notice = plain_notice(T0, summary="Operación en el área: información en español, «ñ».")
    built: list[Any] = []
    record_opening = alerting.notices._opening

    def kept(*args: Any, **kwargs: Any) -> Any:
        transition = record_opening(*args, **kwargs)
        built.append(transition.after)
        return transition

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(alerting.notices, "_opening", kept)
        await _open(deps, notice)

    (alert,) = built
    async with deps.unit_of_work() as uow:
        found = await uow.alerts.get(alert.id)
    assert found is not None
    assert found.content == alert.content
    assert found.content.summary == notice.summary
    assert found.snapshot == alert.snapshot


async def test_a_redelivered_notice_inserts_no_second_delivery(runtime: RouterRuntime) -> None:
    """notice.received again (intake re-sent it, or the consumer's inbox row was lost): the
    alert is not opened twice, so its deliveries are not accepted twice, on either path."""
    deps = runtime.deps
    notice = plain_notice(T0)
    await _open(deps, notice)  # the first alert reads the directory (the slow path)
    again = plain_notice(T0)
    await _open(deps, again)  # the one-statement path
    for repeated in (notice, again, notice, again):
        await _open(deps, repeated)

    for opened in (notice, again):
        alert_id = str(alert_id_for(opened.notice_id))
        where = delivery_records.c.aggregate_id == alert_id
        assert await _count(deps, delivery_records, where) == 2
        assert await _kinds(deps, alert_id) == ["triggered", "notified", "notified"]
        triggered = (outbox_messages.c.event_type == "alert.triggered") & (
            outbox_messages.c.key == alert_id
        )
        assert await _count(deps, outbox_messages, triggered) == 1


@asynccontextmanager
async def _relays_woken(runtime: RouterRuntime) -> AsyncIterator[asyncio.Event]:
    """Set when the outbox's NOTIFY to other processes' relays arrives (PostgreSQL;
    never set on SQLite, which has none)."""
    woken = asyncio.Event()
    if runtime.engine.dialect.name != "postgresql":
        yield woken
        return
    schema = await _scalar(runtime.deps, sa.select(sa.func.current_schema()))
    async with runtime.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        listener: Any = raw.driver_connection
        await listener.add_listener(f"aviso_outbox_{schema}", lambda *_: woken.set())
        yield woken


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_alert_opened_in_one_statement_wakes_other_processes_relays(
    runtime: RouterRuntime, database_url: str | None
) -> None:
    deps = runtime.deps
    await _open(deps, plain_notice(T0))
    async with _relays_woken(runtime) as woken:
        with _statements(runtime) as sent:
            await _open(deps, plain_notice(T0))
        await asyncio.wait_for(woken.wait(), timeout=30)

    assert not [s for s in sent if "INSERT INTO outbox_messages" in s and "opened" not in s]
    assert sum("INSERT INTO alerts" in s for s in sent) == 1


async def _kinds(deps: RouterDeps, alert_id: str) -> list[str]:
    async with deps.sessions() as session:
        rows = await session.execute(
            sa.select(alert_timeline.c.kind)
            .where(alert_timeline.c.alert_id == alert_id)
            .order_by(alert_timeline.c.id)
        )
        return [kind for (kind,) in rows]


async def test_a_duplicate_and_an_update_of_an_alerted_notice_fall_back_to_reading(
    runtime: RouterRuntime,
) -> None:
    deps = runtime.deps
    first = plain_notice(T0)
    await _open(deps, first)
    await _open(deps, first)  # the same notice again: one notice, one alert
    alert_id = str(alert_id_for(first.notice_id))
    assert await _kinds(deps, alert_id) == ["triggered", "notified", "notified"]

    await _open(deps, update(first, 2, summary="Moved."))
    version = await _scalar(deps, sa.select(alerts.c.notice_version).where(alerts.c.id == alert_id))
    assert version == 2
    assert await _count(deps, alerts, alerts.c.notice_id == str(first.notice_id)) == 1


async def test_an_alert_after_a_directory_change_freezes_the_new_directory(
    runtime: RouterRuntime,
) -> None:
    deps = runtime.deps
    await _open(deps, plain_notice(T0))
    await _add_directory(deps, version=2, wait_s=5)
    notice = plain_notice(T0)
    await _open(deps, notice)

    alert_id = str(alert_id_for(notice.notice_id))
    row = (await _rows(deps, sa.select(alerts).where(alerts.c.id == alert_id)))[0]
    assert row.snapshot["directory_version"] == 2
    fire_at = row.next_fire_at if row.next_fire_at.tzinfo else row.next_fire_at.replace(tzinfo=UTC)
    assert fire_at == T0 + timedelta(seconds=5)
    assert await _kinds(deps, alert_id) == ["triggered", "notified", "notified"]


async def _rows(deps: RouterDeps, query: sa.Select[Any]) -> list[Any]:
    async with deps.sessions() as session:
        return list(await session.execute(query))


async def test_a_batch_of_outcomes_writes_changes_and_entries_together(
    runtime: RouterRuntime, database_url: str | None
) -> None:
    deps = runtime.deps
    notices = [plain_notice(T0) for _ in range(3)]
    for notice in notices:
        await _open(deps, notice)
    ids = [str(alert_id_for(n.notice_id)) for n in notices]
    async with deps.sessions() as session:
        # The last one was acknowledged meanwhile: its guard fails, its entry stands.
        await session.execute(
            sa.update(alerts).where(alerts.c.id == ids[-1]).values(state="acknowledged")
        )
        await session.commit()
        rows = await session.execute(
            sa.select(delivery_records).where(delivery_records.c.aggregate_id.in_(ids))
        )
        records = [record_from_row(row._mapping) for row in rows]
    delivered = Delivered(attempts=1, delivered_at=T0, destination_key="k")

    async with _relays_woken(runtime) as woken:
        with _statements(runtime) as sent:
            async with deps.unit_of_work() as uow:
                outcomes = [Settled(record, delivered) for record in records]
                await RouterDeliveryPlan(deps).on_outcomes(uow, outcomes)
                await uow.commit()
        if database_url is not None:
            await asyncio.wait_for(woken.wait(), timeout=30)

    # One read of the batch's alerts, without the two JSON documents its hooks never use.
    reads = [s for s in sent if s.startswith("SELECT alerts.id")]
    assert len(reads) == 1, sent
    assert "alerts.content" not in reads[0], reads
    assert "alerts.snapshot" not in reads[0], reads
    assert "alerts.notice_version" in reads[0], reads
    # Both channels of each alert in one batch: one change statement for all of them.
    assert sum(s.startswith(("UPDATE alerts", "WITH took")) for s in sent) == 1, sent
    separate_timeline = sum(s.startswith("INSERT INTO alert_timeline") for s in sent)
    assert separate_timeline == (1 if database_url is None else 0), sent
    separate_outbox = sum("INSERT INTO outbox_messages" in s and "took" not in s for s in sent)
    assert separate_outbox == (1 if database_url is None else 0), sent
    states = dict(await _rows(deps, sa.select(alerts.c.id, alerts.c.state)))
    assert [states[i] for i in ids] == ["delivered", "delivered", "acknowledged"]
    for alert_id in ids:
        assert (await _kinds(deps, alert_id))[-2:] == ["delivered", "delivered"]
    delivered_events = outbox_messages.c.event_type == "alert.delivered"
    assert await _count(deps, outbox_messages, delivered_events) == 6
    # The changes left the columns the batch did not read as they were.
    async with deps.unit_of_work() as uow:
        for notice, alert_id in zip(notices, ids, strict=True):
            alert = await uow.alerts.get(uuid.UUID(alert_id))
            assert alert is not None
            assert alert.content.summary == notice.summary
            assert alert.snapshot.spoc_id == SPOC


async def test_outcomes_of_alerts_delivered_already_change_no_row(
    runtime: RouterRuntime, database_url: str | None
) -> None:
    """A notice's second channel settled after its first marked the alert: no guarded
    UPDATE is asked for it (main sent `UPDATE alerts SET updated_at` that matched no row,
    a statement of its own beside a batch's real change). With a real change in the
    batch: one change statement; with none: on PostgreSQL one statement for the entries
    and events all the same."""
    deps = runtime.deps
    marked, fresh = plain_notice(T0), plain_notice(T0)
    for notice in (marked, fresh):
        await _open(deps, notice)
    marked_id, fresh_id = (str(alert_id_for(n.notice_id)) for n in (marked, fresh))
    async with deps.sessions() as session:
        await session.execute(
            sa.update(alerts).where(alerts.c.id == marked_id).values(state="delivered")
        )
        await session.commit()
        rows = await session.execute(sa.select(delivery_records))
        records = {}
        for row in rows:
            record = record_from_row(row._mapping)
            records.setdefault(str(record.aggregate_id), []).append(record)
    delivered = Delivered(attempts=1, delivered_at=T0, destination_key="k")

    async def settle(batch: list[Any]) -> list[str]:
        with _statements(runtime) as sent:
            async with deps.unit_of_work() as uow:
                outcomes = [Settled(record, delivered) for record in batch]
                await RouterDeliveryPlan(deps).on_outcomes(uow, outcomes)
                await uow.commit()
        return sent

    mixed = await settle([*records[marked_id], *records[fresh_id]])
    assert sum(s.startswith(("UPDATE alerts", "WITH took")) for s in mixed) == 1, mixed
    assert not [s for s in mixed if "SET updated_at" in s], mixed
    alone = await settle(records[marked_id])
    assert not [s for s in alone if "UPDATE alerts" in s], alone
    if database_url is not None:
        assert sum("INSERT INTO alert_timeline" in s for s in alone) == 1, alone
        assert not [s for s in alone if s.startswith("INSERT INTO outbox_messages")], alone
    states = dict(await _rows(deps, sa.select(alerts.c.id, alerts.c.state)))
    assert (states[marked_id], states[fresh_id]) == ("delivered", "delivered")
    assert (await _kinds(deps, marked_id)).count("delivered") == 4
    assert (await _kinds(deps, fresh_id)).count("delivered") == 2
    delivered_events = outbox_messages.c.event_type == "alert.delivered"
    assert await _count(deps, outbox_messages, delivered_events) == 6


async def test_a_guarded_transition_that_changes_no_column_still_checks_its_guard(
    runtime: RouterRuntime,
) -> None:
    """A guard with nothing to set (the alert already holds every value the transition
    would write) is asked all the same: True while it holds, False once it does not.
    Before, the UPDATE had an empty SET and the database refused it."""
    deps = runtime.deps
    notice = plain_notice(T0)
    await _open(deps, notice)
    alert_id = alert_id_for(notice.notice_id)
    async with deps.unit_of_work() as uow:
        alert = await uow.alerts.get(alert_id)
        assert alert is not None
        holds = VersionGuard(frozenset({alert.state}), alert.notice_version)
        stale = VersionGuard(frozenset({alert.state}), alert.notice_version + 1)
        assert await uow.alerts.apply(Transition(alert, alert, guard=holds)) is True
        assert await uow.alerts.apply(Transition(alert, alert, guard=stale)) is False
        await uow.commit()
    async with deps.unit_of_work() as uow:
        assert await uow.alerts.get(alert_id) == alert


async def test_a_handed_off_alert_is_resolved_from_the_alert_just_written(
    runtime: RouterRuntime, sinks: Sinks
) -> None:
    """With the engine running, a new alert's deliveries are handed off at accept and
    resolved in the opening transaction: from the alert as written, with no read of it."""
    deps, engine = runtime.deps, runtime.delivery
    spoc = {"webhook_url": sinks.webhook.url(f"/hooks/{SPOC}"), "email": "s@p.example"}
    document = spoc_then_backup(
        spoc=SPOC, backup=BACKUP, spoc_channels=spoc,
        backup_channels={"email": "b@p.example"}, wait_s=60,
    )  # fmt: skip
    async with deps.unit_of_work() as uow:
        await uow.directory.add(
            version=2, document=document, digest="digest-2", source="api", created_by="t", at=T0
        )
        await uow.commit()
    await _open(deps, plain_notice(T0))  # the first alert reads the directory
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    try:
        while not engine.dispatching:  # noqa: ASYNC110 - the engine's own state, nothing to await
            await asyncio.sleep(0)
        notice = plain_notice(T0)
        with _by_connection(runtime) as seen:
            await _open(deps, notice)
        await _open(deps, notice)  # redelivered: prepared, handed nothing, inserted nothing
    finally:
        stop.set()
        await running
    alert_id = str(alert_id_for(notice.notice_id))
    where = delivery_records.c.aggregate_id == alert_id
    assert await _count(deps, delivery_records, where) == 2

    # The opening transaction's statements (the engine runs beside it on other connections).
    opening = next(
        c for c, sql, _ in seen if sql.startswith(("INSERT INTO alerts", "WITH in_force"))
    )
    mine = [(sql, values) for c, sql, values in seen if c is opening]
    reads = [sql for sql, _ in mine if sql.startswith("SELECT") and "alerts" in sql]
    assert reads == [], reads
    # Handed off: the accepting INSERT wrote both records as this engine's claim (its
    # values one array per column on PostgreSQL).
    inserted = [v for sql, values in mine if "INSERT INTO delivery_records" in sql for v in values]
    accepted = [item for v in inserted for item in (v if isinstance(v, list) else [v])]
    assert accepted.count(engine.owner_id) == 2, accepted


@contextmanager
def _by_connection(runtime: RouterRuntime) -> Iterator[list[tuple[object, str, list[object]]]]:
    """(checked-out connection, SQL, bound values) of every statement the runtime's engine
    sends: through SQLAlchemy, and (PostgreSQL) straight to asyncpg on the same
    connection (services/common/direct.py), which SQLAlchemy's events never see.

    asyncpg reports a query on the loop turn after it answered: a block that ends with a
    commit has them all.
    """
    seen: list[tuple[object, str, list[object]]] = []
    logged: dict[object, Callable[[Any], None]] = {}
    checked_out: dict[object, object] = {}  # driver connection -> its current checkout

    def before(conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        rows = parameters if isinstance(parameters, list) else [parameters]
        values = [v for row in rows for v in (row.values() if isinstance(row, dict) else row)]
        seen.append((conn.connection, " ".join(statement.split()), values))

    def checkout(dbapi_connection: Any, _record: Any, proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        checked_out[driver] = proxy
        if runtime.engine.dialect.name != "postgresql" or driver in logged:
            return

        def direct(record: Any) -> None:
            # SQLAlchemy's own statements run as prepared statements, which asyncpg does
            # not report here; BEGIN/COMMIT (which it does) are left out as above.
            if not record.query.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
                sql = " ".join(record.query.split())
                seen.append((checked_out[driver], sql, list(record.args)))

        driver.add_query_logger(direct)
        logged[driver] = direct

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", before)
    event.listen(runtime.engine.sync_engine.pool, "checkout", checkout)
    try:
        yield seen
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", before)
        event.remove(runtime.engine.sync_engine.pool, "checkout", checkout)
        for driver, direct in logged.items():
            driver.remove_query_logger(direct)  # type: ignore[attr-defined]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_opening_and_outcome_statements_go_to_asyncpg_in_the_same_transaction(
    runtime: RouterRuntime,
) -> None:
    """On PostgreSQL router's hot statements skip SQLAlchemy's execution (services/common/
    direct.py) yet run in the unit of work's transaction: a rollback takes them back."""
    deps = runtime.deps
    await _open(deps, plain_notice(T0))  # the first alert reads the directory
    notice = plain_notice(T0)
    through_sqlalchemy: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        through_sqlalchemy.append(" ".join(statement.split()))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", before)
    try:
        with _by_connection(runtime) as seen:
            async with deps.unit_of_work() as uow:
                await alerting.open_alert(uow, deps=deps, notice=notice)
                # Left without a commit (rolled back): the alert, its entries and its
                # event must all go with it.
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", before)

    assert not [s for s in through_sqlalchemy if s.startswith("WITH in_force")]
    opening = [c for c, sql, _ in seen if sql.startswith("WITH in_force")]
    assert len(opening) == 1
    # The engine's accept went in the opening statement itself: no statement of its own.
    assert not [sql for _, sql, _ in seen if sql.startswith("INSERT INTO delivery_records")]
    alert_id = str(alert_id_for(notice.notice_id))
    assert await _count(deps, alerts, alerts.c.id == alert_id) == 0
    assert await _kinds(deps, alert_id) == []
    assert await _count(deps, outbox_messages, outbox_messages.c.key == alert_id) == 0
    assert await _count(deps, delivery_records, delivery_records.c.aggregate_id == alert_id) == 0

    # Opened for real, its outcomes recorded: the UPDATE also goes straight to asyncpg.
    await _open(deps, notice)
    async with deps.sessions() as session:
        rows = await session.execute(
            sa.select(delivery_records).where(delivery_records.c.aggregate_id == alert_id)
        )
        records = [record_from_row(row._mapping) for row in rows]
    delivered = Delivered(attempts=1, delivered_at=T0, destination_key="k")
    through_sqlalchemy.clear()
    event.listen(runtime.engine.sync_engine, "before_cursor_execute", before)
    try:
        with _by_connection(runtime) as seen:
            async with deps.unit_of_work() as uow:
                await RouterDeliveryPlan(deps).on_outcomes(
                    uow, [Settled(record, delivered) for record in records]
                )
                await uow.commit()
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", before)
    # Router's own statements of the batch (the alerts' read and the UPDATE) skip
    # SQLAlchemy; the engine's settlement is not router's and still goes through it.
    assert not [s for s in through_sqlalchemy if s.startswith(("WITH took", "SELECT alerts"))]
    assert sum(sql.startswith("WITH took") for _, sql, _ in seen) == 1
    assert sum(sql.startswith("SELECT alerts") for _, sql, _ in seen) == 1
    state = await _scalar(deps, sa.select(alerts.c.state).where(alerts.c.id == alert_id))
    assert state == "delivered"
