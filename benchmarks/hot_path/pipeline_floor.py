"""The pipeline floor: the least pipeline with a notice's hops, measured in the same run.

The single-hop floors (floors.py) say what one Kafka round trip or one commit takes; this
says what the least pipeline of the hops a notice takes in Aviso costs in CPU on this
machine, so that the system's CPU per notice can be read against it (system / floor).

Three processes, each written with the libraries and settings the services use, with no
logic of their own, on topics of their own on the run's broker and tables of their own in
the run's database (so under the same server settings, `synchronous_commit` included):

- `front` (intake's stand-in): uvicorn with uvloop and httptools, the worker count the
  bench gives intake on the notice path, and a bare ASGI app: `POST` -> one asyncpg
  INSERT of the notice row -> one aiokafka produce (acks=all, idempotent, as
  `services/common/kafka.py`'s broker) of a small JSON record -> 201 with the id.
- `relay` (router's stand-in): an aiokafka consumer in a group with router's settings
  (session 2 s, heartbeat every third of it, fetch wait 1 s, offsets committed by hand
  every 5 s); per record one statement (the claim), one signed webhook POST with aiohttp
  to the bench's sink, one statement (the outcome) and one produce (acks=all).
- `project` (rumor_control's stand-in): a consumer group on both topics with
  rumor_control's settings (session 6 s, fetch_min_bytes 64 KiB, fetch wait 1 s), one
  statement per fetched batch.

What it leaves out, and why that makes it a floor: validation and parsing of the notice,
encryption of its restricted detail, authentication, the audit entry, the outbox (the
front produces straight after its commit, and nothing deletes a relayed row), the inbox
and its deduplication, the delivery engine's leases and retries, the e-mail and SMS
sends, the escalation timer, logging and metrics. Each of those is work the system does
on top of the same hops; none of the hops can be left out by a system that keeps a notice
durable, delivers it over Kafka and projects it. So the system cannot spend less than
this here; how far above it it is, is what cutting can still win.

    python -m benchmarks.hot_path.pipeline_floor front|relay|project   (settings: FLOOR_* env)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import uvicorn
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy.local.kafka import ensure_topics
from services.common.signing import SIGNATURE_HEADER, signature_header

__all__ = ["FloorProcesses", "FloorSystem", "app", "create_tables", "running_floor"]

# As the services' settings: consumer_session_timeout_ms, consumer_fetch_max_wait_ms,
# consumer_commit_interval_ms, rumor_consumer_session_timeout_ms and _fetch_min_bytes.
SESSION_MS = 2_000
PROJECT_SESSION_MS = 6_000
FETCH_MAX_WAIT_MS = 1_000
PROJECT_FETCH_MIN_BYTES = 64 * 1024
COMMIT_INTERVAL_S = 5.0
_REBALANCE_TIMEOUT_MS = 30_000  # consuming.py's floor under the rebalance wait
SINK_PATH = "/hooks/pipeline-floor"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def _env(name: str) -> str:
    return os.environ[f"FLOOR_{name}"]


def _producer() -> AIOKafkaProducer:
    # services/common/kafka.py's broker: acks=all, idempotence, half-second retry backoff.
    return AIOKafkaProducer(
        bootstrap_servers=_env("BOOTSTRAP"),
        acks="all",
        enable_idempotence=True,
        retry_backoff_ms=500,
    )


async def _pool() -> asyncpg.Pool:
    # The services keep up to twenty connections (services/common/db.py).
    return await asyncpg.create_pool(_env("DSN"), min_size=1, max_size=20)


# --- the front ---------------------------------------------------------------------------

_front: dict[str, Any] = {}


async def app(scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
    """The front's ASGI app: POST -> INSERT -> produce -> 201."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    notice_id = str(uuid.uuid4())
    await _front["pool"].execute(
        "INSERT INTO pipeline_floor_notices (id, body) VALUES ($1, $2)", notice_id, body.decode()
    )
    record = json.dumps({"notice_id": notice_id}).encode()
    await _front["producer"].send_and_wait(_env("NOTICES"), record, key=notice_id.encode())
    answer = json.dumps({"id": notice_id}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


async def _lifespan(receive: Callable[[], Awaitable[Message]], send: Any) -> None:
    await receive()
    _front["pool"] = await _pool()
    _front["producer"] = _producer()
    await _front["producer"].start()
    await send({"type": "lifespan.startup.complete"})
    await receive()
    await _front["producer"].stop()
    await _front["pool"].close()
    await send({"type": "lifespan.shutdown.complete"})


def _serve_front() -> None:
    # As services/common/serve.py: uvloop and httptools, no access log, lifespan on.
    uvicorn.run(
        "benchmarks.hot_path.pipeline_floor:app",
        host="127.0.0.1",
        port=int(_env("PORT")),
        workers=int(_env("WORKERS")),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="on",
        server_header=False,
    )


# --- the consumers -----------------------------------------------------------------------


def _consumer(*topics: str, group: str, session_ms: int, min_bytes: int = 1) -> AIOKafkaConsumer:
    # services/common/consuming.py's subscriber settings.
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=_env("BOOTSTRAP"),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        fetch_min_bytes=min_bytes,
        consumer_timeout_ms=FETCH_MAX_WAIT_MS,
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(session_ms // 3, 100),
        rebalance_timeout_ms=max(session_ms, _REBALANCE_TIMEOUT_MS),
    )


async def _consume(
    consumer: AIOKafkaConsumer, handle: Callable[[list[Any]], Awaitable[None]]
) -> None:
    """Fetch, handle, and commit the offsets at most every 5 s, as Aviso's consumers do."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await consumer.start()
    print("ready", flush=True)
    owed = False
    committed_at = time.monotonic()
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=FETCH_MAX_WAIT_MS)
            records = [r for batch in batches.values() for r in batch]
            if records:
                await handle(records)
                owed = True
            if owed and time.monotonic() - committed_at >= COMMIT_INTERVAL_S:
                await consumer.commit()
                owed, committed_at = False, time.monotonic()
    finally:
        if owed:
            with contextlib.suppress(Exception):
                await consumer.commit()
        await consumer.stop()


async def _relay() -> None:
    pool = await _pool()
    producer = _producer()
    await producer.start()
    secrets = [_env("WEBHOOK_SECRET").encode()]
    sink = _env("SINK_URL")
    # As services/common/delivery/senders.py's session.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64, limit_per_host=0, keepalive_timeout=4.0),
        timeout=aiohttp.ClientTimeout(total=10.0),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        auto_decompress=False,
    )

    async def one(record: Any) -> None:
        notice_id = json.loads(record.value)["notice_id"]
        await pool.execute(
            "INSERT INTO pipeline_floor_alerts (notice_id, state) VALUES ($1, 'claimed') "
            "ON CONFLICT (notice_id) DO NOTHING",
            notice_id,
        )
        body = json.dumps({"notice_id": notice_id}, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(secrets, body, timestamp=int(time.time())),
        }
        async with session.post(sink, data=body, headers=headers) as response:
            await response.read()
        await pool.execute(
            "UPDATE pipeline_floor_alerts SET state = 'delivered' WHERE notice_id = $1",
            notice_id,
        )
        await producer.send_and_wait(_env("ALERTS"), body, key=record.key)

    async def handle(records: list[Any]) -> None:
        await asyncio.gather(*(one(r) for r in records))

    consumer = _consumer(_env("NOTICES"), group=_env("GROUP") + "-relay", session_ms=SESSION_MS)
    try:
        await _consume(consumer, handle)
    finally:
        await session.close()
        await producer.stop()
        await pool.close()


async def _project() -> None:
    pool = await _pool()

    async def handle(records: list[Any]) -> None:
        await pool.execute(
            "INSERT INTO pipeline_floor_projection (topic, part, position) "
            "SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]) ON CONFLICT DO NOTHING",
            [r.topic for r in records],
            [r.partition for r in records],
            [r.offset for r in records],
        )

    consumer = _consumer(
        _env("NOTICES"),
        _env("ALERTS"),
        group=_env("GROUP") + "-project",
        session_ms=PROJECT_SESSION_MS,
        min_bytes=PROJECT_FETCH_MIN_BYTES,
    )
    try:
        await _consume(consumer, handle)
    finally:
        await pool.close()


# --- the bench's side --------------------------------------------------------------------

TABLES = (
    "CREATE TABLE IF NOT EXISTS pipeline_floor_notices (id text PRIMARY KEY, body text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pipeline_floor_alerts "
    "(notice_id text PRIMARY KEY, state text NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pipeline_floor_projection "
    "(topic text, part int, position bigint, PRIMARY KEY (topic, part, position))",
)


async def create_tables(dsn: str) -> None:
    """The floor's three small tables, in the run's database."""
    conn = await asyncpg.connect(dsn)
    try:
        for statement in TABLES:
            await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class FloorSystem:
    """What the bench's load (load.py's run_rate) reads of a system: the sink and its path."""

    webhook: Any
    url: str

    def spoc_path(self) -> str:
        return SINK_PATH


@dataclass
class FloorProcesses:
    """The floor's three processes, by the name of the service each stands in for."""

    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items() if p.poll() is None}

    def start(self, env: dict[str, str], log_dir: Path) -> None:
        """The consumers first, then the front (each logs to a file of `log_dir`)."""
        log_dir.mkdir(parents=True, exist_ok=True)
        for role, name in (("relay", "router"), ("project", "rumor_control"), ("front", "intake")):
            with (log_dir / f"pipeline-floor-{role}.log").open("ab") as log:
                self.processes[name] = subprocess.Popen(  # noqa: S603 - our own module
                    [sys.executable, "-m", "benchmarks.hot_path.pipeline_floor", role],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_listening(port: int, process: subprocess.Popen[bytes], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the pipeline floor's front stopped while starting")
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError("the pipeline floor's front did not start listening")


@asynccontextmanager
async def running_floor(
    *,
    bootstrap: str,
    dsn: str,
    sink: Any,
    webhook_secret: str,
    log_dir: Path,
    workers: int = 1,
) -> AsyncIterator[tuple[FloorSystem, FloorProcesses]]:
    """Create the floor's topics and tables, start its three processes; stop them after."""
    run = uuid.uuid4().hex[:8]
    notices = f"aviso.bench.pipeline-floor-{run}.notices"
    alerts = f"aviso.bench.pipeline-floor-{run}.alerts"
    await ensure_topics(bootstrap, [notices, alerts])  # the services' partition count
    await create_tables(dsn)
    port = _free_port()
    env = {
        **os.environ,
        "FLOOR_BOOTSTRAP": bootstrap,
        "FLOOR_DSN": dsn,
        "FLOOR_NOTICES": notices,
        "FLOOR_ALERTS": alerts,
        "FLOOR_GROUP": f"bench-floor-{run}",
        "FLOOR_PORT": str(port),
        "FLOOR_WORKERS": str(workers),
        "FLOOR_SINK_URL": sink.url(SINK_PATH),
        "FLOOR_WEBHOOK_SECRET": webhook_secret,
    }
    floor = FloorProcesses()
    try:
        await asyncio.to_thread(floor.start, env, log_dir)
        await _wait_listening(port, floor.processes["intake"], within=60.0)
        yield FloorSystem(sink, f"http://127.0.0.1:{port}"), floor
    finally:
        await asyncio.to_thread(floor.stop)


def main(argv: list[str] | None = None) -> None:
    role = (argv or sys.argv[1:])[0]
    if role == "front":
        _serve_front()
    elif role == "relay":
        uvloop.run(_relay())
    elif role == "project":
        uvloop.run(_project())
    else:
        raise SystemExit(f"unknown role {role!r}: front, relay or project")


if __name__ == "__main__":
    main()
