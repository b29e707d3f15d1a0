"""Recovery after a crash: how long a SIGKILL leaves work waiting (real Kafka, real database).

    python -m benchmarks.recovery [--rounds 3] [--database-url URL] [--skip-relay|--skip-consumer]

(a) Outbox: a relay process claims the head rows of 20 keys (its broker never answers, so
    it holds them, renewing its lease) and is killed with SIGKILL. Measured: from the kill
    to another relay's broker acknowledgement of the first and of the last held row.
(b) Consumers: two member processes share a group on a 4-partition topic; the owner of
    partition 0 is killed with SIGKILL and 5 events go to every partition at once.
    Measured: from the kill to the survivor applying the first (and the last) event of the
    dead member's partitions; the survivor's own partitions show the undisturbed latency.

Prints the configured lease (`AVISO_OUTBOX_CLAIM_TTL_S`) and session timeout
(`AVISO_CONSUMER_SESSION_TIMEOUT_MS`) beside the figures; no assertions. Settings come
from the environment like a service's. Needs KAFKA_BOOTSTRAP_SERVERS; with
`--database-url` (or DATABASE_URL) a fresh PostgreSQL database is created and dropped,
otherwise SQLite files in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import make_engine, make_session_factory
from services.common.kafka import make_broker, outbox_publisher
from services.common.logging import configure_logging
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
from tests.support.infra import drop_database_async, fresh_database_async
from tests.support.kafka_io import wait_for

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 120.0
KEYS, ROWS_PER_KEY = 20, 3
PARTITIONS = list(range(4))
EVENTS_PER_PARTITION = 5


def _env(settings: CommonSettings) -> dict[str, str]:
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers)
    env["AVISO_VAR_DIR"] = str(settings.var_dir)
    env["AVISO_LOG_LEVEL"] = "WARNING"
    env.pop("DATABASE_URL", None)
    env.pop("AVISO_DATABASE_URL", None)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    return env


async def _claimed_by(engine: AsyncEngine, relay_id: str) -> list[str]:
    t = outbox_messages
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(t.c.message_id).where(t.c.claimed_by == relay_id, t.c.sent_at.is_(None))
        )
        return [r.message_id for r in rows]


async def relay_round(settings: CommonSettings) -> tuple[float, float]:
    """Kill a relay holding claims; seconds until the first and the last are republished."""
    engine = make_engine(settings, "intake")
    broker = make_broker(settings, service="bench")
    await broker.connect()
    holder = _spawn_relay(settings)
    survivor: OutboxRelay | None = None
    try:
        relay_id = await _ready(holder)
        sessions = make_session_factory(engine)
        keys = [uuid.uuid4() for _ in range(KEYS)]
        for version in range(2, 2 + ROWS_PER_KEY):
            async with sessions() as session, session.begin():
                for key in keys:
                    await enqueue(session, notice_updated(key, version), source="aviso.bench")

        async def all_heads_claimed() -> bool:
            # The head of every key at least: a claim after a later commit takes whole chains.
            return len(await _claimed_by(engine, relay_id)) >= KEYS

        await wait_for(all_heads_claimed, timeout=DEADLINE_S)
        held = set(await _claimed_by(engine, relay_id))

        published: dict[str, float] = {}
        publish = outbox_publisher(broker)

        async def timed(row: OutboxRow) -> None:
            await publish(row)
            published[row.message_id] = time.monotonic()

        survivor = OutboxRelay(
            engine=engine,
            publish=timed,
            component="intake",
            poll_interval_s=settings.outbox_poll_interval_s,
            claim_ttl_s=settings.outbox_claim_ttl_s,
        )
        await survivor.start()
        await asyncio.sleep(0.5)  # the survivor is idle, as a healthy instance would be
        killed_at = time.monotonic()
        await asyncio.to_thread(_kill, holder)
        await wait_for(lambda: held <= set(published), timeout=DEADLINE_S)
        return (
            min(published[m] for m in held) - killed_at,
            max(published[m] for m in held) - killed_at,
        )
    finally:
        await asyncio.to_thread(_kill, holder)
        if survivor is not None:
            await survivor.stop()
        await broker.stop()
        await engine.dispose()


async def consumer_round(settings: CommonSettings, run: str) -> tuple[float, float, float]:
    """Kill one of two members; seconds until the survivor applies the dead one's events."""
    bootstrap = settings.kafka_bootstrap_servers
    topic, group = f"aviso.bench.failover-{run}", f"bench-failover-{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, len(PARTITIONS), replication_factor=1)])
    finally:
        await admin.close()
    engine = make_engine(settings, "intake")
    env = _env(settings)
    members = [Member.start(env, topic, group, name) for name in ("a", "b")]
    try:
        for member in members:
            await member.ready()
        owners = await owners_of_partitions(engine, bootstrap, topic, PARTITIONS)
        victim = next(m for m in members if m.name == owners[0])
        killed_at = time.time()
        await asyncio.to_thread(victim.kill)
        sent = await produce_to_partitions(bootstrap, topic, PARTITIONS, EVENTS_PER_PARTITION)

        async def all_applied() -> bool:
            return set(sent) <= {e.message_id for e in await member_effects(engine)}

        await wait_for(all_applied, timeout=DEADLINE_S)
        applied = {e.message_id: e.processed_at for e in await member_effects(engine)}
        dead = [applied[m] - killed_at for m, p in sent.items() if owners[p] == victim.name]
        alive = [applied[m] - killed_at for m, p in sent.items() if owners[p] != victim.name]
        return min(dead), max(dead), min(alive)
    finally:
        for member in members:
            await asyncio.to_thread(member.stop)
        await engine.dispose()


def _spawn_relay(settings: CommonSettings) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.common.crashable", "relay"],
        cwd=ROOT,
        env=_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def _ready(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    while True:
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), DEADLINE_S)
        if not line:
            raise RuntimeError(f"child exited with {process.poll()}")
        if line.startswith("READY"):
            return line.split()[1]


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def _spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):5.2f} s  "
        f"min {min(values):5.2f} s  max {max(values):5.2f} s"
    )


async def run(args: argparse.Namespace) -> None:
    var = Path(tempfile.mkdtemp(prefix="aviso-bench-recovery-"))
    database_url = args.database_url
    if database_url:
        database_url = await fresh_database_async(database_url, prefix="aviso_bench")
    settings = CommonSettings(var_dir=var, database_url=database_url)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")
    async with engine.begin() as conn:
        await conn.execute(sa.text(MEMBER_EFFECTS_DDL))
    await engine.dispose()
    backend = "postgresql" if database_url else "sqlite"
    print(f"recovery after SIGKILL ({backend}, {args.rounds} rounds)")
    try:
        if not args.skip_relay:
            await _report_relay(settings, args.rounds)
        if not args.skip_consumer:
            await _report_consumer(settings, args.rounds)
    finally:
        if database_url:
            await drop_database_async(database_url)


async def _report_relay(settings: CommonSettings, rounds: int) -> None:
    results = [await relay_round(settings) for _ in range(rounds)]
    print(
        f"(a) outbox relay killed holding {KEYS} claims; lease (AVISO_OUTBOX_CLAIM_TTL_S) "
        f"{settings.outbox_claim_ttl_s:g} s, poll {settings.outbox_poll_interval_s:g} s"
    )
    _print_row("kill -> first held row republished", [r[0] for r in results])
    _print_row("kill -> last held row republished", [r[1] for r in results])


async def _report_consumer(settings: CommonSettings, rounds: int) -> None:
    results = [await consumer_round(settings, uuid.uuid4().hex[:8]) for _ in range(rounds)]
    print(
        "(b) one of two consumers killed; session timeout (AVISO_CONSUMER_SESSION_TIMEOUT_MS) "
        f"{settings.consumer_session_timeout_ms} ms"
    )
    first, last, own = (list(column) for column in zip(*results, strict=True))
    _print_row("kill -> survivor's first event of the dead one's partitions", first)
    _print_row("kill -> survivor's last event of the dead one's partitions", last)
    _print_row("kill -> survivor's first event of its own partitions", own)


def _print_row(label: str, values: list[float]) -> None:
    rounds = "  ".join(f"{v:5.2f}" for v in values)
    print(f"    {label:<62} {_spread(values)}   rounds: {rounds}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="PostgreSQL server URL (a fresh database is created on it); SQLite when unset",
    )
    parser.add_argument("--skip-relay", action="store_true")
    parser.add_argument("--skip-consumer", action="store_true")
    args = parser.parse_args()
    configure_logging("bench", level="WARNING", fmt="json")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
