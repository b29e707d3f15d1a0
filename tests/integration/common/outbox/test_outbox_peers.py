"""A commit NOTIFYs other processes' relays only while one listens (outbox/peers.py).

Counted at a plain LISTEN connection (not a relay's: it is nobody's peer), with a
sentinel NOTIFY after each commit: a session hears NOTIFYs in commit order, whatever their
channel, so when the sentinel is heard, any NOTIFY of the commit before it has been heard
too. The sentinel goes on a channel of its own: on intake's, the relay would take it for
another process's NOTIFY, a peer, and turn its process's NOTIFYs on again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import db
from services.common.db import asyncpg_dsn, make_engine, make_session_factory
from services.common.outbox import OutboxRelay, OutboxRow, enqueue, writing
from services.common.outbox.peers import listener_name
from services.common.settings import CommonSettings
from tests.support import infra
from tests.support.events import notice_updated
from tests.support.kafka_io import wait_for
from tests.support.outbox_peers import peer_listener

pytestmark = [pytest.mark.postgres]

_CHANNEL = "aviso_outbox_intake"
_SENTINEL_CHANNEL = "aviso_test_sentinel"


class Counter:
    """Every NOTIFY heard on intake's channel; `settled` sends a sentinel, waits for it and
    returns this process's commits' NOTIFYs so far."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.heard: list[tuple[int, str]] = []
        # Relays' LISTEN connections: their announcements are not commits' NOTIFYs.
        self.relays: set[int] = set()
        self._sentinel = asyncio.Event()

    def hear(self, _conn: object, pid: int, _channel: str, payload: str) -> None:
        self.heard.append((pid, payload))

    def hear_sentinel(self, *_: object) -> None:
        self._sentinel.set()

    def ignore(self, relay: OutboxRelay) -> None:
        self.relays.add(relay._listener.get_server_pid())

    async def settled(self) -> list[str]:
        self._sentinel.clear()
        await self.connection.execute(f"SELECT pg_notify('{_SENTINEL_CHANNEL}', 'sentinel')")
        await asyncio.wait_for(self._sentinel.wait(), timeout=30)
        return [
            p
            for pid, p in self.heard
            if pid not in self.relays and p.startswith(writing._PROCESS_TOKEN)
        ]


@pytest.fixture
async def counter(engine: AsyncEngine) -> AsyncIterator[Counter]:
    connection = await asyncpg.connect(asyncpg_dsn(engine.url))
    counting = Counter(connection)
    await connection.add_listener(_CHANNEL, counting.hear)
    await connection.add_listener(_SENTINEL_CHANNEL, counting.hear_sentinel)
    yield counting
    await connection.close()


async def _publish(_row: OutboxRow) -> None:
    return None


async def _commit_one(engine: AsyncEngine) -> None:
    async with make_session_factory(engine)() as session, session.begin():
        await enqueue(session, notice_updated(uuid.uuid4(), 2), source="aviso.test")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_notifies_stop_while_no_peer_listens_and_come_back_with_one(
    engine: AsyncEngine, counter: Counter
) -> None:
    await _commit_one(engine)  # no relay listens yet: the default, a NOTIFY
    assert len(await counter.settled()) == 1

    relay = OutboxRelay(engine=engine, publish=_publish, component="intake", poll_interval_s=60)
    await relay.start()
    counter.ignore(relay)
    try:
        assert db._outbox_notify.get("intake") is False  # alone: decided at its LISTEN
        await _commit_one(engine)
        await _commit_one(engine)
        assert len(await counter.settled()) == 1  # nothing more

        # Another process's relay starts: it announces itself, and commits NOTIFY again.
        async with peer_listener(engine.url, "intake", lambda *_: None):
            await _commit_one(engine)
            assert len(await counter.settled()) == 2

        # It left; the next count (an idle relay's, now and then) stops them again.
        await relay._peers.recount(relay._listener)
        await _commit_one(engine)
        assert len(await counter.settled()) == 2
    finally:
        await relay.stop()
    # Stopped: nobody decides any more, so the default holds again.
    assert "intake" not in db._outbox_notify
    await _commit_one(engine)
    assert len(await counter.settled()) == 3


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_relay_that_starts_beside_another_finds_it_and_both_notify(
    settings: CommonSettings, engine: AsyncEngine, counter: Counter
) -> None:
    other = make_engine(settings, "intake")
    first = OutboxRelay(engine=other, publish=_publish, component="intake", poll_interval_s=60)
    await first.start()
    counter.ignore(first)
    # This process plays both: its first relay found none, the second finds the first.
    second = OutboxRelay(engine=engine, publish=_publish, component="intake", poll_interval_s=60)
    try:
        assert db._outbox_notify.get("intake") is False
        await second.start()
        counter.ignore(second)
        assert db._outbox_notify.get("intake") is True
        await _commit_one(engine)
        assert len(await counter.settled()) == 1
    finally:
        await second.stop()
        await first.stop()
        await other.dispose()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_lost_listen_connection_is_reopened_and_its_peers_counted_again(
    engine: AsyncEngine, counter: Counter
) -> None:
    relay = OutboxRelay(engine=engine, publish=_publish, component="intake", poll_interval_s=60)
    await relay.start()
    counter.ignore(relay)
    lost = relay._listener.get_server_pid()
    forgotten: list[bool | None] = []
    relay._peers.left = lambda: forgotten.append(db._outbox_notify.pop("intake", None))  # type: ignore[method-assign]
    try:
        await counter.connection.execute("SELECT pg_terminate_backend($1)", lost)
        # Its end said so (every commit NOTIFYs until it listens again), then it listens
        # again at once (the wake-up) and counts: still alone.
        await wait_for(lambda: relay._listener.get_server_pid() != lost, timeout=30)
        assert forgotten == [False]
        counter.ignore(relay)
        await wait_for(lambda: db._outbox_notify.get("intake") is False, timeout=30)
        await _commit_one(engine)
        assert await counter.settled() == []
    finally:
        await relay.stop()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_relay_of_another_database_on_the_server_is_no_peer(
    database_url: str, engine: AsyncEngine, counter: Counter
) -> None:
    # Its NOTIFYs and ours never meet: a NOTIFY stays in its database.
    elsewhere = await infra.fresh_database_async(database_url)
    stranger = await asyncpg.connect(
        infra.asyncpg_dsn(elsewhere), server_settings={"application_name": listener_name("intake")}
    )
    relay = OutboxRelay(engine=engine, publish=_publish, component="intake", poll_interval_s=60)
    try:
        await relay.start()
        counter.ignore(relay)
        assert db._outbox_notify.get("intake") is False
        await relay._peers.recount(relay._listener)
        assert db._outbox_notify.get("intake") is False
        await _commit_one(engine)
        assert await counter.settled() == []
    finally:
        await relay.stop()
        await stranger.close()
        await infra.drop_database_async(elsewhere)
