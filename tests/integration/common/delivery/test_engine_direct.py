"""The delivery engine's rounds on PostgreSQL go straight to asyncpg (direct_rounds.py):
no SQLAlchemy statement, one SQL text for every batch size; the same outcomes on SQLite,
which keeps its SQLAlchemy statements."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.common.delivery import SqlDeliveryStore
from services.common.delivery.store import Settlement
from tests.integration.common.delivery import test_engine_real as real
from tests.support.statements import record_statements

pytestmark = pytest.mark.postgres

Db = real.Db
# The engine tests' database (both back ends) and their sender clean-up, shared.
db = real.db
_close_senders = real._close_senders


@contextmanager
def _through_sqlalchemy(db: Db) -> Iterator[list[str]]:
    """Statements that pass through SQLAlchemy's execution path meanwhile (not BEGIN)."""
    seen: list[str] = []

    def statement(_c: Any, _cur: Any, text: str, *_args: Any) -> None:
        if not text.startswith("BEGIN"):
            seen.append(text)

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", statement)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", statement)


async def _claim_all(store: SqlDeliveryStore, owner: str, now: datetime) -> list[Any]:
    return await store.claim(owner=owner, now=now, lease_until=now + timedelta(seconds=60),
                             limit=100, exclude_keys=())  # fmt: skip


async def test_accepts_of_any_size_are_one_statement_in_the_callers_transaction(
    db: Db,
) -> None:
    engine = real._engine(db)
    every = record_statements(db.engine)
    sizes = (1, 3, 40)
    with _through_sqlalchemy(db) as orm:
        for size in sizes:
            orders = [real._order(f"http://127.0.0.1:1/a{size}-{i}") for i in range(size)]
            async with db.sessions() as session, session.begin():
                assert await engine.accept_many(session, orders) == size
                # Seen by the caller's own transaction before it commits.
                count = await session.scalar(sa.select(sa.func.count()).select_from(real.records))
                assert count == sum(sizes[: sizes.index(size) + 1])
        async with db.sessions() as session:  # rolled back: nothing stays
            await engine.accept_many(session, [real._order("http://127.0.0.1:1/gone")])
            await session.rollback()
    await asyncio.sleep(0)
    assert len(await real._rows(db)) == sum(sizes)
    inserts = [s for s in every if s.upper().startswith("INSERT INTO")]
    if db.postgres:
        # One INSERT per accept, the same text whatever the number of rows, none through
        # SQLAlchemy (the count reads above are the test's own).
        assert len(inserts) == len(sizes) + 1
        assert len(set(inserts)) == 1
        assert not [s for s in orm if "delivery_records" in s and "INSERT" in s.upper()]
    else:
        assert len(inserts) == len(sizes) + 1


async def test_settling_batches_of_any_size_is_one_statement_and_keeps_the_guard(
    db: Db,
) -> None:
    store = SqlDeliveryStore(sessions=db.sessions, table=real.records)
    engine = real._engine(db)
    orders = [real._order(f"http://127.0.0.1:1/s{i}") for i in range(4)]
    await real._accept(db, engine, *orders)
    now = datetime.now(UTC)
    assert len(await _claim_all(store, "me", now)) == 4
    a, b, c, d = (o.delivery_id for o in orders)
    async with db.sessions() as session, session.begin():  # d is taken over meanwhile
        await session.execute(
            sa.update(real.records)
            .where(real.records.c.delivery_id == str(d))
            .values(claimed_by="other")
        )
    every = record_statements(db.engine)
    with _through_sqlalchemy(db) as orm:
        for batch in ([a], [b, c, d]):
            async with store.transaction() as tx:
                held = await store.settle_many(
                    tx, owner="me", settlements=[Settlement(i, "delivered", now) for i in batch]
                )
                await tx.commit()
            assert held == set(batch) - {d}
    await asyncio.sleep(0)
    settling = list(every)
    rows = await real._rows(db)
    assert [rows[str(i)].state for i in (a, b, c, d)] == ["delivered"] * 3 + ["sending"]
    assert rows[str(d)].claimed_by == "other"  # another process's claim: left alone
    if db.postgres:
        assert orm == []
        assert len(settling) == 2
        assert len(set(settling)) == 1


async def test_a_renewal_extends_ours_and_names_those_another_process_holds(db: Db) -> None:
    store = SqlDeliveryStore(sessions=db.sessions, table=real.records)
    engine = real._engine(db)
    orders = [real._order(f"http://127.0.0.1:1/r{i}") for i in range(3)]
    await real._accept(db, engine, *orders)
    now = datetime.now(UTC)
    assert len(await _claim_all(store, "me", now)) == 3
    a, b, c = (o.delivery_id for o in orders)
    until = now + timedelta(seconds=90)
    every = record_statements(db.engine)
    with _through_sqlalchemy(db) as orm:
        all_ours = await store.renew(owner="me", ids=[a, b], until=until)
        await asyncio.sleep(0)
        first = list(every)
    async with db.sessions() as session, session.begin():  # c is taken over
        await session.execute(
            sa.update(real.records)
            .where(real.records.c.delivery_id == str(c))
            .values(claimed_by="other")
        )
    del every[:]
    with _through_sqlalchemy(db) as orm_then:
        one_lost = await store.renew(owner="me", ids=[a, c], until=until + timedelta(seconds=1))
        await asyncio.sleep(0)
        second = list(every)
    assert (all_ours.renewed, all_ours.lost) == (frozenset({a, b}), frozenset())
    assert (one_lost.renewed, one_lost.lost) == (frozenset({a}), frozenset({c}))
    rows = await real._rows(db)
    assert real._aware(rows[str(a)].claimed_until) == until + timedelta(seconds=1)
    assert real._aware(rows[str(b)].claimed_until) == until
    if db.postgres:
        # Autocommitted, no session: the UPDATE alone when all were renewed, then the
        # read of what is still ours when one was not.
        assert orm == orm_then == []
        assert len(first) == 1
        assert first[0].startswith("UPDATE")
        assert len(second) == 2
        assert second[0] == first[0]
        assert second[1].startswith("SELECT")


async def test_the_next_due_time_is_the_earliest_timer_or_foreign_lease(db: Db) -> None:
    store = SqlDeliveryStore(sessions=db.sessions, table=real.records)
    engine = real._engine(db)
    assert await store.next_due() is None
    later = datetime.now(UTC) + timedelta(minutes=5)
    orders = [real._order(f"http://127.0.0.1:1/n{i}") for i in range(2)]
    await real._accept(db, engine, *orders)
    async with db.sessions() as session, session.begin():
        await session.execute(
            sa.update(real.records)
            .where(real.records.c.delivery_id == str(orders[0].delivery_id))
            .values(next_attempt_at=later + timedelta(minutes=1))
        )
        await session.execute(
            sa.update(real.records)
            .where(real.records.c.delivery_id == str(orders[1].delivery_id))
            .values(state="sending", claimed_by="other", claimed_until=later)
        )
    with _through_sqlalchemy(db) as orm:
        alone = await store.next_due()
        async with store.transaction() as tx:
            inside = await store.next_due(tx)
    assert alone == inside == later
    if db.postgres:
        assert orm == []


async def test_a_claim_caps_each_destination_in_one_text_for_any_room(db: Db) -> None:
    store = SqlDeliveryStore(sessions=db.sessions, table=real.records)
    engine = real._engine(db)
    keys = ["k1"] * 3 + ["k2"] * 3 + ["k3"] * 2 + [None] * 2
    orders = [real._order(f"http://127.0.0.1:1/c{i}") for i in range(len(keys))]
    await real._accept(db, engine, *orders)
    async with db.sessions() as session, session.begin():
        for order, key in zip(orders, keys, strict=True):
            await session.execute(
                sa.update(real.records)
                .where(real.records.c.delivery_id == str(order.delivery_id))
                .values(destination_key=key)
            )
    now = datetime.now(UTC)
    lease = now + timedelta(seconds=60)
    every = record_statements(db.engine, width=4000)
    with _through_sqlalchemy(db) as orm:
        first = await store.claim(owner="me", now=now, lease_until=lease, limit=10,
                                  exclude_keys=["k3"], room={"k1": 1}, default_room=2)  # fmt: skip
        second = await store.claim(owner="me", now=now, lease_until=lease, limit=1,
                                   exclude_keys=(), room={"k3": 5})  # fmt: skip
        await asyncio.sleep(0)
    by_key = Counter(r.destination_key for r in first)
    # k1 capped by its room, k2 by the default, k3 left out, unknown destinations uncapped.
    assert by_key == {"k1": 1, "k2": 2, None: 2}
    assert len(second) == 1
    rows = await real._rows(db)
    taken = {r.delivery_id for r in [*first, *second]}
    assert {rows[str(i)].claimed_by for i in taken} == {"me"}
    assert sum(row.state == "sending" for row in rows.values()) == len(taken)
    if db.postgres:
        claims = [s for s in every if s.startswith("WITH scanned")]
        # Two kinds in the first claim (lapsed looked for once a second), one in the
        # second: two texts whatever the room, the limit or the destinations left out.
        assert orm == []
        assert len(claims) == 3
        assert len(set(claims)) == 2


async def test_a_put_back_shares_its_destination_with_the_recipients_unknown_records(
    db: Db,
) -> None:
    store = SqlDeliveryStore(sessions=db.sessions, table=real.records)
    engine = real._engine(db)
    person, other = uuid.uuid4(), uuid.uuid4()
    mine = [replace(real._order(f"http://127.0.0.1:1/p{i}"), recipient_id=person) for i in range(3)]
    theirs = replace(real._order("http://127.0.0.1:1/o"), recipient_id=other)
    await real._accept(db, engine, *mine[:1])
    now = datetime.now(UTC)
    (busy,) = await _claim_all(store, "me", now)
    await real._accept(db, engine, *mine[1:], theirs)
    put_back = Settlement(busy.delivery_id, "pending", now, next_attempt_at=now,
                          destination_key="kp", share_with=(person, "webhook"))  # fmt: skip
    every = record_statements(db.engine, width=4000)
    with _through_sqlalchemy(db) as orm:
        async with store.transaction() as tx:
            await store.settle_many(tx, owner="me", settlements=[put_back])
            await tx.commit()
        await asyncio.sleep(0)
        settling = list(every)
    rows = await real._rows(db)
    assert {rows[str(o.delivery_id)].destination_key for o in mine} == {"kp"}
    assert rows[str(theirs.delivery_id)].destination_key is None  # another person's
    if db.postgres:
        assert orm == []
        assert len(settling) == 2  # the settling statement and the sharing one
        assert settling[1].startswith("WITH v AS")
