"""The physical floors, measured in the same run: what no service can beat on this machine.

- Kafka: one message produced (acks=all) and consumed back, one at a time; the
  round trip from send to receipt.
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


async def kafka_round_trip(bootstrap: str, *, samples: int) -> dict[str, Any]:
    """Produce -> consume round trip of single small messages on a fresh topic."""
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
    times: list[float] = []
    try:
        await producer.send_and_wait(topic, b"warm-up")
        await consumer.getone()
        for n in range(samples):
            began = time.perf_counter()
            await producer.send(topic, str(n).encode())
            await consumer.getone()
            times.append((time.perf_counter() - began) * 1000)
    finally:
        await consumer.stop()
        await producer.stop()
    return {"samples": samples, "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99)}


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
