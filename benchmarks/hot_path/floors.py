"""The physical floors, measured in the same run: what no service can beat on this machine.

- Kafka: one message produced (acks=all) and consumed back, one at a time; the
  round trip from send to receipt. Back to back, and paced (one every 100 ms, 10/s's
  pace): after 100 ms idle every process and thread on the way is woken from sleep,
  which on this machine costs each hand-off ~0.15-0.2 ms more than back to back, so the
  paced floor is the one a 10/s notice's Kafka hop meets (docs/performance.md, the
  twenty-fourth round).
- PostgreSQL: asyncpg, one INSERT in its own transaction (BEGIN, INSERT, COMMIT) per
  round, by 16 and by 64 connections at once; commits per second and latency.
- SQLite (`--backend sqlite`): aiosqlite, one INSERT in its own transaction per round,
  on a file with the services' own settings (WAL, synchronous=NORMAL); one connection,
  as SQLite has one writer at a time.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.hot_path.infra import Infra
from benchmarks.hot_path.load import percentile

__all__ = ["kafka_round_trip", "postgres_insert_commit", "sqlite_insert_commit"]


async def kafka_round_trip(
    bootstrap: str, *, samples: int, paced_samples: int = 0, pace_s: float = 0.1
) -> dict[str, Any]:
    """Produce -> consume round trip of single small messages on a fresh topic: back to
    back, then (`paced_samples` > 0) each after `pace_s` idle, as `paced`."""
    topic = f"aviso.bench.floor-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", fetch_max_wait_ms=500
    )
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up")
        await consumer.getone()
        times = await _round_trips(producer, consumer, topic, samples=samples, pace_s=0.0)
        paced = await _round_trips(producer, consumer, topic, samples=paced_samples, pace_s=pace_s)
    finally:
        await consumer.stop()
        await producer.stop()
    found: dict[str, Any] = {
        "samples": samples,
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
    }
    if paced:
        found["paced"] = {
            "samples": paced_samples,
            "pace_s": pace_s,
            "p50_ms": percentile(paced, 50),
            "p99_ms": percentile(paced, 99),
        }
    return found


async def _round_trips(
    producer: AIOKafkaProducer,
    consumer: AIOKafkaConsumer,
    topic: str,
    *,
    samples: int,
    pace_s: float,
) -> list[float]:
    """`samples` round trips in ms, each after `pace_s` of idleness (0: back to back)."""
    times: list[float] = []
    for n in range(samples):
        if pace_s:
            await asyncio.sleep(pace_s)
        began = time.perf_counter()
        await producer.send(topic, str(n).encode())
        await consumer.getone()
        times.append((time.perf_counter() - began) * 1000)
    return times


async def postgres_insert_commit(
    infra: Infra, *, concurrency: int, duration_s: float
) -> dict[str, Any]:
    """INSERT + COMMIT rounds by `concurrency` connections for `duration_s`."""
    table = f"bench_floor_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(infra.dsn())
    await admin.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, body text NOT NULL)")
    pool = await asyncpg.create_pool(infra.dsn(), min_size=concurrency, max_size=concurrency)
    times: list[float] = []
    stop_at = time.perf_counter() + duration_s

    async def worker() -> None:
        async with pool.acquire() as conn:
            while time.perf_counter() < stop_at:
                began = time.perf_counter()
                async with conn.transaction():
                    await conn.execute(
                        f"INSERT INTO {table} (id, body) VALUES ($1, $2)",  # noqa: S608 - our own name
                        uuid.uuid4(),
                        "x" * 200,
                    )
                times.append((time.perf_counter() - began) * 1000)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await pool.close()
        await admin.execute(f"DROP TABLE {table}")
        await admin.close()
    return {
        "concurrency": concurrency,
        "commits_per_s": len(times) / duration_s,
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
    }


async def sqlite_insert_commit(directory: Path, *, duration_s: float) -> dict[str, Any]:
    """INSERT + COMMIT rounds on one SQLite connection for `duration_s`, in a file under
    `directory` (removed afterwards, with the directory)."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    path = directory / "floor.db"
    times: list[float] = []
    try:
        async with aiosqlite.connect(path, isolation_level=None) as conn:
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):  # as the services' own
                await conn.execute(f"PRAGMA {pragma}")
            await conn.execute("CREATE TABLE floor (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
            stop_at = time.perf_counter() + duration_s
            while time.perf_counter() < stop_at:
                began = time.perf_counter()
                await conn.execute("BEGIN IMMEDIATE")
                await conn.execute(
                    "INSERT INTO floor (id, body) VALUES (?, ?)", (str(uuid.uuid4()), "x" * 200)
                )
                await conn.execute("COMMIT")
                times.append((time.perf_counter() - began) * 1000)
    finally:
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)
    return {
        "concurrency": 1,
        "commits_per_s": len(times) / duration_s,
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
    }
