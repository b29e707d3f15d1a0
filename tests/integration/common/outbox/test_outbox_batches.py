"""The relay's batches against real Kafka and real databases: one produce round per batch,
two statements per round, a key's next row sent without waiting for a poll, and the
wake-ups of a commit (in process, or by another process's NOTIFY)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.topics import NOTICES
from services.common.db import asyncpg_dsn, make_engine, make_session_factory
from services.common.kafka import outbox_publisher
from services.common.messaging import outbox_messages
from services.common.outbox import OutboxRelay, OutboxRow, enqueue, enqueue_all, writing
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import read_topic, wait_for
from tests.support.statements import record_statements

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
async def engines(settings: CommonSettings) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """One engine for the writers, one for the relay alone (its statements are counted)."""
    writer, relay = make_engine(settings, "intake"), make_engine(settings, "intake")
    yield writer, relay
    await writer.dispose()
    await relay.dispose()


def executed_statements(engine: AsyncEngine) -> list[object]:
    """The statement objects `engine` executes from now on (before SQLAlchemy compiles)."""
    seen: list[object] = []

    def before(_conn: Any, clauseelement: object, *_args: Any) -> None:
        seen.append(clauseelement)

    event.listen(engine.sync_engine, "before_execute", before)
    return seen


async def unsent(engine: AsyncEngine) -> int:
    """Rows left in the outbox: a row Kafka acknowledged is deleted, not marked sent."""
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(outbox_messages)
        return int((await conn.execute(query)).scalar_one())


@pytest.mark.parametrize(("batch_size", "rounds"), [(100, 1), (2, 3)])
async def test_a_chain_of_one_key_is_sent_without_polls_in_two_statements_per_round(
    settings: CommonSettings,
    broker: KafkaBroker,
    engines: tuple[AsyncEngine, AsyncEngine],
    batch_size: int,
    rounds: int,
) -> None:
    writer, relay_engine = engines
    chained, single_a, single_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with make_session_factory(writer)() as session, session.begin():
        for notice_id, version in [(chained, 2), (single_a, 2), (chained, 3), (single_b, 2)]:
            await enqueue(session, notice_updated(notice_id, version), source="aviso.test")
        await enqueue(session, notice_updated(chained, 4), source="aviso.test")

    statements = record_statements(relay_engine)
    executed = executed_statements(relay_engine)
    # No wake-ups and a poll far beyond the deadline below: only the relay's own
    # knowledge that a key's next row waits can get the chain out in time. The long
    # lease keeps the heartbeat out of the count.
    relay = OutboxRelay(
        engine=relay_engine,
        publish=outbox_publisher(broker),
        component="intake",
        batch_size=batch_size,
        poll_interval_s=120,
        claim_ttl_s=60,
        wake_on_commit=False,
    )
    await relay.start()
    try:
        await wait_for(lambda: _none_unsent(writer), timeout=30)
        records = await read_topic(
            settings.kafka_bootstrap_servers,
            NOTICES,
            until=lambda rs: len(rs) >= 3,
            key_filter=lambda k: k == str(chained).encode(),
        )
    finally:
        await relay.stop()

    assert [dict(r.headers)["ce_subject"] for r in records] == [str(chained).encode()] * 3
    assert [_version(r.value) for r in records] == [2, 3, 4], "per-key order kept"
    assert relay.published_total == 5
    # A claim takes the key's three rows at once: one round. Two rows a round (ids in
    # order: chained 2 and single_a, chained 3 and single_b, chained 4) take three, the
    # next claimed at once because the claim said a row of its key waits. Each round a
    # claim and a settling: nothing read back, no empty claim after a round, no lease
    # query while rows keep coming.
    assert len(statements) == 2 * rounds, statements
    # Built once per relay, not per round: the claims are one statement object, and so
    # are the settlings (their cache keys are memoised on them). PostgreSQL's settling
    # goes straight to asyncpg, one SQL text for every batch size.
    postgres = settings.database_url is not None
    assert len(executed) == (1 if postgres else 2) * rounds
    assert len({id(statement) for statement in executed}) == (1 if postgres else 2)
    if postgres:
        settlings = [s for s in statements if s.startswith("DELETE FROM outbox_messages")]
        assert len(settlings) == rounds
        assert len(set(settlings)) == 1


async def _none_unsent(engine: AsyncEngine) -> bool:
    return await unsent(engine) == 0


def _version(value: bytes | None) -> int:
    import json

    assert value is not None
    return int(json.loads(value)["version"])


async def test_a_batch_goes_out_with_the_same_headers_as_a_single_publish(
    settings: CommonSettings, broker: KafkaBroker
) -> None:
    publisher = outbox_publisher(broker)
    key = str(uuid.uuid4())
    headers = {"ce_id": "x", "ce_type": "notice.updated", "ce_correlationid": "corr-9"}

    def row(n: int) -> OutboxRow:
        return OutboxRow(n, f"m{n}", NOTICES, key, "notice.updated", headers, f'{{"n": {n}}}')

    await publisher(row(1))
    assert await publisher.publish_batch([row(2), row(3), row(4)]) == [None, None, None]
    # The lingering relay's way: the key's rows in one record batch.
    assert await publisher.publish_keys_together([row(5), row(6)]) == [None, None]

    records = await read_topic(
        settings.kafka_bootstrap_servers,
        NOTICES,
        until=lambda rs: len(rs) >= 6,
        key_filter=lambda k: k == key.encode(),
    )
    assert [r.value for r in records] == [f'{{"n": {n}}}'.encode() for n in range(1, 7)]
    assert len({r.partition for r in records}) == 1, "the partition send() chooses"
    single, *batched = (dict(r.headers) for r in records)
    assert all(h == single for h in batched)
    assert single["ce_correlationid"] == single["correlation_id"] == b"corr-9"


async def test_many_events_are_enqueued_in_one_statement_in_order(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    writer, _ = engines
    notice_id = uuid.uuid4()
    statements = record_statements(writer)
    async with make_session_factory(writer)() as session, session.begin():
        outgoing = await enqueue_all(
            session,
            [(notice_updated(notice_id, v), f"corr-{v}") for v in (2, 3, 4)],
            source="aviso.test",
        )
    # The INSERT of all three rows (with the NOTIFY on PostgreSQL), nothing per row.
    assert [s for s in statements if "outbox_messages" in s] == statements[:1]
    assert len(statements) == 1, statements
    async with writer.connect() as conn:
        rows = await conn.execute(
            sa.select(outbox_messages.c.message_id)
            .where(outbox_messages.c.key == str(notice_id))
            .order_by(outbox_messages.c.id)
        )
        assert [r.message_id for r in rows] == [o.message_id for o in outgoing]


async def test_writes_alongside_an_event_share_its_statement_on_postgresql(
    settings: CommonSettings, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    writer, _ = engines
    async with make_session_factory(writer)() as session, session.begin():
        await session.execute(sa.text("CREATE TABLE side_effects (id VARCHAR(36), n INTEGER)"))
    side = sa.table("side_effects", sa.column("id"), sa.column("n"))
    notice_id = uuid.uuid4()
    statements = record_statements(writer)
    async with make_session_factory(writer)() as session, session.begin():
        await enqueue(
            session,
            notice_updated(notice_id, 2),
            source="aviso.test",
            alongside=[
                sa.insert(side).values(id=str(notice_id), n=1),
                sa.insert(side).values(id=str(notice_id), n=2),
            ],
        )
    postgres = settings.database_url is not None
    # PostgreSQL: both writes, the outbox row and its NOTIFY in one round trip; SQLite:
    # the writes first, then the row.
    assert len(statements) == (1 if postgres else 3), statements
    async with writer.connect() as conn:
        written = await conn.execute(sa.select(side.c.n).where(side.c.id == str(notice_id)))
        assert sorted(r.n for r in written) == [1, 2]
    assert await unsent(writer) == 1


async def test_one_commit_wakes_the_relay_once(
    broker: KafkaBroker, engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    writer, relay_engine = engines
    statements = record_statements(relay_engine)
    kafka = outbox_publisher(broker)

    async def slow_publish(row: OutboxRow) -> None:
        # Long enough for every wake-up of the commit to arrive while the round runs.
        await asyncio.sleep(0.3)
        await kafka(row)

    relay = OutboxRelay(
        engine=relay_engine,
        publish=slow_publish,
        component="intake",
        poll_interval_s=120,
        claim_ttl_s=60,
    )
    await relay.start()
    try:
        # The first, empty round: a claim and the lease query before it sleeps.
        await wait_for(lambda: len(statements) >= 2, timeout=30)
        statements.clear()
        async with make_session_factory(writer)() as session, session.begin():
            await enqueue(session, notice_updated(uuid.uuid4(), 2), source="aviso.test")
        await wait_for(lambda: relay.published_total == 1, timeout=30)
        # Room for a second wake-up to arrive (on PostgreSQL the NOTIFY reaches this
        # relay too, besides the in-process signal); it must not start another round.
        await asyncio.sleep(1.0)
    finally:
        await relay.stop()
    assert len(statements) == 2, statements  # one claim, one settling


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_notify_wakes_the_relay_unless_its_own_process_sent_it(
    broker: KafkaBroker,
    engines: tuple[AsyncEngine, AsyncEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer, relay_engine = engines
    relay = OutboxRelay(
        engine=relay_engine,
        publish=outbox_publisher(broker),
        component="intake",
        poll_interval_s=120,  # nothing but a wake-up can start a round in this test
        claim_ttl_s=60,
    )
    # Each NOTIFY the relay hears, and whether hearing it woke the relay.
    heard: asyncio.Queue[bool] = asyncio.Queue()
    notified = relay._notified

    def hearing(conn: object, pid: int, channel: str, payload: str) -> None:
        notified(conn, pid, channel, payload)
        heard.put_nowait(relay._wake.is_set())

    monkeypatch.setattr(relay, "_notified", hearing)
    statements = record_statements(relay_engine)
    await relay.start()
    # The first, empty round (a claim and the lease query) is over before anything is written.
    await wait_for(lambda: len(statements) >= 2, timeout=30)
    # The writer's commits no longer wake this process's relays directly, as if it were
    # another process; its NOTIFY still carries this process's token.
    monkeypatch.setattr(writing, "_wakers", set())
    try:
        async with make_session_factory(writer)() as session, session.begin():
            await enqueue(session, notice_updated(uuid.uuid4(), 2), source="aviso.test")
        # Its own process's NOTIFY arrives and does not wake the relay (the direct
        # wake-up did that).
        woke = await asyncio.wait_for(heard.get(), timeout=30)
        assert not woke
        assert relay.published_total == 0
        assert await unsent(writer) == 1

        # Another process's commit: its NOTIFY, with another token, wakes the relay, and
        # whoever watches this process's commits (the escalation worker) hears of it too.
        watcher = asyncio.Event()
        unwatch = writing.watch_commits(watcher)
        notifier = await asyncpg.connect(asyncpg_dsn(writer.url))
        try:
            await notifier.execute("SELECT pg_notify('aviso_outbox_intake', 'another-process')")
        finally:
            await notifier.close()
        await wait_for(lambda: relay.published_total == 1, timeout=30)
        await asyncio.wait_for(watcher.wait(), timeout=30)
        unwatch()
    finally:
        await relay.stop()
