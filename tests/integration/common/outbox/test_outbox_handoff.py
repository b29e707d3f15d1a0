"""Rows a commit hands straight to this process's relay (PostgreSQL): published from
memory with no claim, nothing after a rollback, taken over after a crash once the lease
ends, and per-key order kept when an earlier row of the key is held by another relay."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.topics import NOTICES
from services.common.db import make_engine, make_session_factory
from services.common.kafka import outbox_publisher
from services.common.messaging import outbox_messages
from services.common.outbox import OutboxRelay, OutboxRow, Taker, enqueue, enqueue_all
from services.common.outbox.handoff import register_taker
from services.common.settings import CommonSettings
from tests.support.events import notice_updated
from tests.support.kafka_io import published_versions, wait_for
from tests.support.statements import record_statements

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

DEADLINE_S = 60.0


def _claims(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("WITH claimable")]


def _settlings(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("DELETE FROM outbox_messages")]


async def _leases(engine: AsyncEngine, key: uuid.UUID) -> list[str | None]:
    t = outbox_messages
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(t.c.claimed_by).where(t.c.key == str(key)).order_by(t.c.id)
        )
        return [r.claimed_by for r in rows]


def _relay(engine: AsyncEngine, broker: KafkaBroker, **options: Any) -> OutboxRelay:
    # A poll far beyond the test's waits: only a hand-over or a wake-up starts a round.
    defaults: dict[str, Any] = {"poll_interval_s": 120, "claim_ttl_s": 60}
    return OutboxRelay(
        engine=engine,
        publish=outbox_publisher(broker),
        component="intake",
        **(defaults | options),
    )


async def test_rows_a_commit_wrote_are_published_from_memory_without_a_claim(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    relay = _relay(engine, broker)
    statements = record_statements(engine, width=60)
    await relay.start()
    notice_id, other = uuid.uuid4(), uuid.uuid4()
    try:
        await wait_for(lambda: len(_claims(statements)) == 1, timeout=DEADLINE_S)  # at start
        statements.clear()
        async with make_session_factory(engine)() as session, session.begin():
            await enqueue_all(
                session,
                [(notice_updated(notice_id, v), None) for v in (2, 3)]
                + [(notice_updated(other, 2), None)],
                source="aviso.test",
            )
        # A claim the commit asked for would run in the same turn as the hand-over, its
        # statement sent before the turn yields: by the time the count is seen, it is listed.
        await wait_for(lambda: relay.published_total == 3, timeout=DEADLINE_S)
    finally:
        await relay.stop()

    assert _claims(statements) == [], statements
    assert len(_settlings(statements)) == 1, statements  # one statement deletes all three
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, notice_id, 2, timeout=DEADLINE_S
    ) == [2, 3]


async def test_a_rolled_back_transaction_hands_over_nothing(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    taken: list[list[dict[str, Any]]] = []
    stop_taking = register_taker(
        engine, Taker(relay_id="test-taker", lease_s=60, take=lambda rows, _at: taken.append(rows))
    )
    rolled_back, committed = uuid.uuid4(), uuid.uuid4()
    try:
        with pytest.raises(RuntimeError, match="the use case failed"):
            await _enqueue_then_fail(engine, rolled_back)
        async with make_session_factory(engine)() as session, session.begin():
            await enqueue(session, notice_updated(committed, 2), source="aviso.test")
    finally:
        stop_taking()

    assert [[row["key"] for row in rows] for rows in taken] == [[str(committed)]]
    assert await _leases(engine, committed) == ["test-taker"]
    assert await _leases(engine, rolled_back) == []


async def _enqueue_then_fail(engine: AsyncEngine, notice_id: uuid.UUID) -> None:
    async with make_session_factory(engine)() as session, session.begin():
        await enqueue(session, notice_updated(notice_id, 2), source="aviso.test")
        leased = await session.execute(
            sa.select(outbox_messages.c.claimed_by).where(outbox_messages.c.key == str(notice_id))
        )
        assert leased.scalars().all() == ["test-taker"]  # to be handed over at commit
        raise RuntimeError("the use case failed")


async def test_rows_of_a_process_that_died_after_its_commit_are_claimed_once_the_lease_ends(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    # The dead process: its relay leased the rows and was handed them, then it died.
    dropped: list[list[dict[str, Any]]] = []
    stop_taking = register_taker(
        engine,
        Taker(relay_id="dead-relay", lease_s=1.0, take=lambda rows, _at: dropped.append(rows)),
    )
    notice_id = uuid.uuid4()
    try:
        async with make_session_factory(engine)() as session, session.begin():
            await enqueue_all(
                session, [(notice_updated(notice_id, v), None) for v in (2, 3)], source="aviso.test"
            )
    finally:
        stop_taking()
    assert len(dropped) == 1
    assert await _leases(engine, notice_id) == ["dead-relay", "dead-relay"]

    survivor = _relay(engine, broker, poll_interval_s=0.5, claim_ttl_s=2.0)
    await survivor.start()
    try:
        await wait_for(lambda: survivor.published_total == 2, timeout=DEADLINE_S)
    finally:
        await survivor.stop()
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, notice_id, 2, timeout=DEADLINE_S
    ) == [2, 3]


async def test_a_row_whose_key_has_a_row_held_by_another_relay_waits_for_it(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    notice_id = uuid.uuid4()
    release = asyncio.Event()
    kafka = outbox_publisher(broker)

    async def held_until_released(row: OutboxRow) -> None:
        await release.wait()
        await kafka(row)

    # Another relay (another process) claimed version 2 and is still publishing it.
    async with make_session_factory(engine)() as session, session.begin():
        await enqueue(session, notice_updated(notice_id, 2), source="aviso.test")
    holder = OutboxRelay(
        engine=engine, publish=held_until_released, component="intake", hand_off=False
    )
    holding = asyncio.create_task(holder.relay_once())
    await wait_for(
        lambda: _equals(_leases(engine, notice_id), [holder.relay_id]), timeout=DEADLINE_S
    )

    statements = record_statements(engine, width=60)
    relay = _relay(engine, broker, poll_interval_s=0.2)
    await relay.start()
    try:
        async with make_session_factory(engine)() as session, session.begin():
            await enqueue(session, notice_updated(notice_id, 3), source="aviso.test")
        # Not leased at insert: the key has a row waiting. Nothing of the key goes out
        # while the holder holds version 2, however many claims the relay makes.
        assert await _leases(engine, notice_id) == [holder.relay_id, None]
        claims = len(_claims(statements))
        await wait_for(lambda: len(_claims(statements)) > claims, timeout=DEADLINE_S)
        assert relay.published_total == 0
        release.set()
        assert await asyncio.wait_for(holding, DEADLINE_S) == 1
        await wait_for(lambda: relay.published_total == 1, timeout=DEADLINE_S)
    finally:
        release.set()
        await relay.stop()
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, notice_id, 2, timeout=DEADLINE_S
    ) == [2, 3]


async def _equals(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def test_the_leased_insert_settles_on_one_generic_plan(settings: CommonSettings) -> None:
    """The INSERT that leases rows as they go in is planned once, not at every call.

    PostgreSQL makes custom plans for a prepared statement's first five runs, then keeps
    a generic plan if it costs no more than they did. A generic plan counts ten rows for
    an array it has not seen: with the key's look-up done per row that was ten look-ups,
    custom plans always won, and every call paid its planning (0.3 ms for router's
    statements). With the look-up done once per statement the generic plan wins.
    """
    engine = make_engine(settings, "intake", pool_size=1)  # one connection: one cache
    stop_taking = register_taker(
        engine, Taker(relay_id="test-planner", lease_s=60, take=lambda _rows, _at: None)
    )
    try:
        for version in range(2, 14):
            async with make_session_factory(engine)() as session, session.begin():
                events = [(notice_updated(uuid.uuid4(), version), None) for _ in range(2)]
                await enqueue_all(session, events, source="aviso.test")
        async with engine.connect() as conn:
            plans = (
                await conn.execute(
                    sa.text(
                        "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                        "WHERE statement LIKE 'WITH inserted AS (INSERT INTO outbox_messages%'"
                    )
                )
            ).one()
    finally:
        stop_taking()
        await engine.dispose()
    assert plans.generic_plans >= 1, plans
    assert plans.custom_plans <= 5, plans


class _Recording:
    """A batch publisher that records what it was given (nothing reaches Kafka)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def publish_batch(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        self.batches.append([row.key for row in rows])
        return [None] * len(rows)


async def test_a_commit_s_rows_reach_the_publisher_one_loop_turn_after_the_commit(
    engine: AsyncEngine,
) -> None:
    publisher = _Recording()
    relay = OutboxRelay(
        engine=engine, publish=publisher, component="intake", poll_interval_s=120, claim_ttl_s=60
    )
    await relay.start()
    notice_id = uuid.uuid4()
    try:
        # Idle: the loop waits on its wake-up (after the start's claim and lease look-up).
        await wait_for(lambda: relay._wake.waiting, timeout=DEADLINE_S)
        session = make_session_factory(engine)()
        try:
            await session.begin()
            await enqueue(session, notice_updated(notice_id, 2), source="aviso.test")
            await session.commit()  # hands the row over; nothing after it has yielded yet
            turns = 0
            while not publisher.batches and turns < 10:
                await asyncio.sleep(0)
                turns += 1
        finally:
            await session.close()
        # One turn: the hand-over resumed the relay's loop, which published at once
        # (`asyncio.wait_for(event.wait())` took three: its task, its end, the waiter).
        assert turns == 1
        assert publisher.batches == [[str(notice_id)]]
        await wait_for(lambda: relay.published_total == 1, timeout=DEADLINE_S)
    finally:
        await relay.stop()


async def _hand_over(
    engine: AsyncEngine,
    relay: OutboxRelay,
    versions: dict[uuid.UUID, Sequence[int]],
    *,
    stale: bool = True,
) -> None:
    """Commit `versions` handed to `relay` (not started), `stale`: as if long ago."""
    stop_taking = register_taker(
        engine, Taker(relay_id=relay.relay_id, lease_s=60, take=relay._take)
    )
    try:
        async with make_session_factory(engine)() as session, session.begin():
            await enqueue_all(
                session,
                [(notice_updated(key, v), None) for key, vs in versions.items() for v in vs],
                source="aviso.test",
            )
    finally:
        stop_taking()
    if stale:  # a loop behind under load: handed over more than a third of a lease ago
        relay._handed = collections.deque((at - 60.0, row) for at, row in relay._handed)


async def test_rows_handed_over_long_ago_are_leased_again_and_published_without_a_claim(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    relay = _relay(engine, broker)
    notice_id = uuid.uuid4()
    await _hand_over(engine, relay, {notice_id: (2, 3)})
    statements = record_statements(engine, width=60)

    # Left to a claim, they waited for their lease to end (a whole minute here).
    assert await relay._relay_handed() == 2
    await relay._settling.delete_waiting()  # the delete waits for the next rounds'
    assert _claims(statements) == [], statements
    assert await _leases(engine, notice_id) == []  # deleted once sent
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, notice_id, 2, timeout=DEADLINE_S
    ) == [2, 3]


async def test_a_stale_row_another_relay_took_keeps_its_key_back_and_the_others_go(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    relay = _relay(engine, broker)
    taken, free = uuid.uuid4(), uuid.uuid4()
    await _hand_over(engine, relay, {taken: (2, 3), free: (2,)})
    # The lease of `taken`'s version 2 ended and another relay claimed it.
    async with engine.begin() as conn:
        first = (
            sa.select(sa.func.min(outbox_messages.c.id))
            .where(outbox_messages.c.key == str(taken))
            .scalar_subquery()
        )
        await conn.execute(
            sa.update(outbox_messages)
            .where(outbox_messages.c.id == first)
            .values(claimed_by="other-relay")
        )

    assert await relay._relay_handed() == 1  # only `free`'s row
    await relay._settling.delete_waiting()
    assert await _leases(engine, taken) == ["other-relay", relay.relay_id]
    assert await _leases(engine, free) == []
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, free, 1, timeout=DEADLINE_S
    ) == [2]


async def test_a_backlog_of_handed_rows_goes_in_rounds_of_several_batches(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    relay = _relay(engine, broker, batch_size=10)
    keys = [uuid.uuid4() for _ in range(25)]
    await _hand_over(engine, relay, dict.fromkeys(keys, (2,)), stale=False)
    statements = record_statements(engine, width=60)

    # A relay held back by its loop's turns (intake's, under load) catches up by rows per
    # round: 10 a round fell behind for good.
    assert await relay._relay_handed() == 25
    await relay._settling.delete_waiting()
    assert len(_settlings(statements)) == 1, statements
    assert _claims(statements) == [], statements
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, keys[-1], 1, timeout=DEADLINE_S
    ) == [2]


async def test_handed_rounds_sent_rows_are_deleted_together_a_moment_later(
    settings: CommonSettings, engine: AsyncEngine, broker: KafkaBroker
) -> None:
    relay = _relay(engine, broker)
    keys = [uuid.uuid4() for _ in range(3)]
    statements = record_statements(engine, width=60)

    # Three notices' rounds, as at a low rate: sent at once, deleted in one statement.
    for key in keys:
        await _hand_over(engine, relay, {key: (2,)}, stale=False)
        assert await relay._relay_handed() == 1
        assert await _leases(engine, key) == [relay.relay_id]  # sent, still leased here
    assert _settlings(statements) == [], statements
    # Their leases do not bring a claim forward: the idle look leaves them out.
    assert await relay._settling.earliest_lease_end_s() is None
    await relay._settling.delete_waiting()
    assert len(_settlings(statements)) == 1, statements
    for key in keys:
        assert await _leases(engine, key) == []
    assert await published_versions(
        settings.kafka_bootstrap_servers, NOTICES, keys[-1], 1, timeout=DEADLINE_S
    ) == [2]


async def test_a_running_relay_deletes_its_sent_rows_once_they_are_due(
    engine: AsyncEngine, broker: KafkaBroker
) -> None:
    relay = _relay(engine, broker, claim_ttl_s=2)  # rows wait a sixth of it: 0.33 s
    notice_id = uuid.uuid4()
    await relay.start()
    try:
        async with make_session_factory(engine)() as session, session.begin():
            await enqueue(session, notice_updated(notice_id, 2), source="aviso.test")
        await wait_for(lambda: relay.published_total == 1, timeout=DEADLINE_S)
        # No further commit, no stop: the loop's own wait ends when the delete is due.
        await wait_for(lambda: _no_rows(engine, notice_id), timeout=DEADLINE_S)
        assert not relay._settling.waiting
    finally:
        await relay.stop()


async def _no_rows(engine: AsyncEngine, key: uuid.UUID) -> bool:
    return await _leases(engine, key) == []
