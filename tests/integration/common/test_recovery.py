"""Recovery from a crash: outbox leases that lapse quickly, and consumer failover after SIGKILL.

Real Kafka; the outbox on both SQLite and PostgreSQL, the consumer group on PostgreSQL.
Every wait is on the event with a generous deadline: these tests catch a loss, a
duplicate or a reordering, never a delay.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from deploy.local import kafka as local_kafka
from schemas.topics import NOTICES
from services.common.db import make_engine, make_session_factory
from services.common.kafka import make_broker, outbox_publisher
from services.common.messaging import outbox_messages
from services.common.migrations import upgrade
from services.common.outbox import OutboxRelay, OutboxRow, enqueue
from services.common.settings import CommonSettings
from tests.integration.common.crashable import (
    MEMBER_EFFECTS_DDL,
    Member,
    member_effects,
    owners_of_partitions,
    produce_to_partitions,
)
from tests.support.events import notice_updated
from tests.support.kafka_io import read_topic, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[3]
DEADLINE_S = 60.0  # generous: a wait that runs out means something was lost


@dataclass
class Outbox:
    settings: CommonSettings
    engine: AsyncEngine
    broker: KafkaBroker


@pytest.fixture
async def outbox(
    database_url: str | None, kafka_bootstrap: str, make_settings: Callable[..., CommonSettings]
) -> AsyncIterator[Outbox]:
    settings = make_settings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    broker = make_broker(settings, service="test")
    await broker.connect()
    yield Outbox(settings, engine, broker)
    await broker.stop()
    await engine.dispose()


async def _enqueue_versions(outbox: Outbox, keys: list[uuid.UUID], versions: range) -> None:
    # Interleaved across keys, one transaction per version, as concurrent use cases write.
    sessions = make_session_factory(outbox.engine)
    for version in versions:
        async with sessions() as session, session.begin():
            for notice_id in keys:
                await enqueue(session, notice_updated(notice_id, version), source="aviso.test")


async def _claimed_by(outbox: Outbox, relay_id: str) -> int:
    async with outbox.engine.connect() as conn:
        result = await conn.execute(
            sa.select(sa.func.count())
            .select_from(outbox_messages)
            .where(outbox_messages.c.claimed_by == relay_id, outbox_messages.c.sent_at.is_(None))
        )
        return int(result.scalar_one())


async def _versions_by_key(
    outbox: Outbox, keys: list[uuid.UUID], total: int
) -> dict[str, list[int]]:
    wanted = {str(k).encode() for k in keys}
    records = await read_topic(
        outbox.settings.kafka_bootstrap_servers,
        NOTICES,
        until=lambda rs: len(rs) >= total,
        key_filter=lambda k: k in wanted,
        timeout=DEADLINE_S,
    )
    by_key: dict[str, list[int]] = {str(k): [] for k in keys}
    for record in records:
        by_key[record.key.decode()].append(json.loads(record.value)["version"])
    return by_key


def _never_acknowledged() -> Callable[[OutboxRow], Any]:
    async def publish(row: OutboxRow) -> None:
        await asyncio.Event().wait()

    return publish


async def test_a_dead_relays_claims_pass_to_another_relay_once_its_lease_lapses(
    outbox: Outbox,
) -> None:
    keys = [uuid.uuid4() for _ in range(5)]
    versions = range(2, 6)
    await _enqueue_versions(outbox, keys, versions)

    # A relay claims the head of every key, then dies mid-publish: its heartbeat stops and
    # nothing releases the claims, exactly as after SIGKILL.
    # (A batch the size of one version: rows go in version by version, so that is the
    # first row of every key; a larger one would take whole keys.)
    dead = OutboxRelay(
        engine=outbox.engine,
        publish=_never_acknowledged(),
        component="intake",
        batch_size=len(keys),
        claim_ttl_s=1.0,
    )
    dying = asyncio.create_task(dead.relay_once())
    await wait_for(lambda: _is(_claimed_by(outbox, dead.relay_id), len(keys)), timeout=DEADLINE_S)
    dying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dying
    assert await _claimed_by(outbox, dead.relay_id) == len(keys), "death released nothing"

    survivor = OutboxRelay(
        engine=outbox.engine,
        publish=outbox_publisher(outbox.broker),
        component="intake",
        poll_interval_s=0.5,
    )
    await survivor.start()
    try:
        by_key = await _versions_by_key(outbox, keys, len(keys) * len(versions))
    finally:
        await survivor.stop()

    for key, seen in by_key.items():
        assert seen == list(versions), f"key {key}: lost, doubled or out of order: {seen}"
    assert survivor.published_total == len(keys) * len(versions)


class CountingRelay(OutboxRelay):
    """A relay that counts its lease renewals (its heartbeat)."""

    renewals = 0

    async def _renew(self, ids: list[int]) -> None:
        await super()._renew(ids)
        self.renewals += 1


async def test_a_slow_publish_keeps_its_claim_so_another_relay_neither_doubles_nor_reorders(
    outbox: Outbox,
) -> None:
    keys = [uuid.uuid4() for _ in range(3)]
    versions = range(2, 5)
    await _enqueue_versions(outbox, keys, versions)
    publish = outbox_publisher(outbox.broker)
    release = asyncio.Event()

    async def slow_publish(row: OutboxRow) -> None:
        await release.wait()  # the broker takes several leases to answer
        await publish(row)

    # It claims the first row of every key (a batch the size of one version).
    slow = CountingRelay(
        engine=outbox.engine,
        publish=slow_publish,
        component="intake",
        batch_size=len(keys),
        claim_ttl_s=2.0,
    )
    slow_round = asyncio.create_task(slow.relay_once())
    await wait_for(lambda: _is(_claimed_by(outbox, slow.relay_id), len(keys)), timeout=DEADLINE_S)
    other = OutboxRelay(
        engine=outbox.engine, publish=publish, component="intake", poll_interval_s=0.2
    )
    await other.start()
    try:
        # Four renewals span more than one whole lease past the claim.
        await wait_for(lambda: slow.renewals >= 4, timeout=DEADLINE_S)
        assert other.published_total == 0, "another relay took rows whose lease was renewed"
        assert await _claimed_by(outbox, slow.relay_id) == len(keys)
        release.set()
        assert await asyncio.wait_for(slow_round, DEADLINE_S) == len(keys)
        by_key = await _versions_by_key(outbox, keys, len(keys) * len(versions))
    finally:
        release.set()
        await other.stop()

    for key, seen in by_key.items():
        assert seen == list(versions), f"key {key}: lost, doubled or out of order: {seen}"
    assert other.published_total == len(keys) * (len(versions) - 1)


async def _is(count: Any, expected: int) -> bool:
    return bool(await count == expected)


# -- consumer failover ----------------------------------------------------------------


def test_the_local_broker_accepts_the_default_session_timeout(tmp_path: Path) -> None:
    properties = local_kafka.render_server_properties(local_kafka.KafkaSettings(data_dir=tmp_path))
    values = dict(line.split("=", 1) for line in properties.splitlines() if "=" in line)
    minimum = int(values.get("group.min.session.timeout.ms", "6000"))  # Kafka's own default
    assert minimum <= CommonSettings().consumer_session_timeout_ms


async def test_kill_9_of_one_of_two_consumers_the_survivor_applies_the_rest_exactly_once(
    pg_database: str,
    kafka_bootstrap: str,
    make_settings: Callable[..., CommonSettings],
    unique: Callable[[str], str],
) -> None:
    settings = make_settings(database_url=pg_database, kafka_bootstrap_servers=kafka_bootstrap)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    async with engine.begin() as conn:
        await conn.execute(sa.text(MEMBER_EFFECTS_DDL))
    topic, group = unique("aviso.test.failover"), unique("failover")
    partitions = list(range(4))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, DATABASE_URL=pg_database)
    env["AVISO_VAR_DIR"] = str(settings.var_dir)
    env.pop("AVISO_CONSUMER_SESSION_TIMEOUT_MS", None)  # the defaults are what is under test

    # Each handler takes 0.1 s, so the kill lands while the victim still has work queued.
    members = [Member.start(env, topic, group, name, delay_s=0.1) for name in ("a", "b")]
    try:
        for member in members:
            await member.ready()
        owners = await owners_of_partitions(engine, kafka_bootstrap, topic, partitions)
        victim_name = owners[0]
        victim = next(m for m in members if m.name == victim_name)
        survivor_name = next(m.name for m in members if m is not victim)
        before = await produce_to_partitions(kafka_bootstrap, topic, partitions, 10)
        # Mid-stream: the victim has applied some of its share, not all.
        await wait_for(
            lambda: _applied_by(engine, set(before), victim_name, at_least=2), timeout=DEADLINE_S
        )
        await asyncio.to_thread(victim.kill)
        assert victim.process.returncode == -9
        after = await produce_to_partitions(kafka_bootstrap, topic, partitions, 10)
        expected = set(before) | set(after)

        async def all_applied() -> bool:
            return expected <= {e.message_id for e in await member_effects(engine)}

        await wait_for(all_applied, timeout=DEADLINE_S)
        await asyncio.sleep(1.0)  # room for a wrongly repeated effect to show up
        effects = [e for e in await member_effects(engine) if e.message_id in expected]
    finally:
        for member in members:
            await asyncio.to_thread(member.stop)
        await engine.dispose()

    applied = [e.message_id for e in effects]
    assert sorted(applied) == sorted(expected), "each event applied exactly once"
    dead_partitions = {p for p, name in owners.items() if name == victim_name}
    taken_over = {e.message_id for e in effects if e.member == survivor_name}
    assert {m for m, p in after.items() if p in dead_partitions} <= taken_over, (
        "the survivor applies what was sent to the dead member's partitions after the kill"
    )


async def _applied_by(engine: AsyncEngine, ids: set[str], member: str, *, at_least: int) -> bool:
    return (
        sum(1 for e in await member_effects(engine) if e.message_id in ids and e.member == member)
        >= at_least
    )
