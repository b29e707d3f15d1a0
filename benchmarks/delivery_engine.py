"""Delivery engine throughput: N webhook deliveries to a local sink, with and without a hang.

    python benchmarks/delivery_engine.py [--deliveries 1000] [--hanging 40] [--database-url URL]

Prints, in one run:
- the floor: requests/s the production WebhookSender reaches in a plain loop at the same
  concurrency, with no engine and no database (what the engine could reach at best),
- the engine's deliveries/s (accepted records -> all recorded as delivered), each to its
  own URL (a fan-out to N liaisons), through the same WebhookSender,
- the same with `--hanging` extra records to one endpoint that never answers (the
  webhook timeout is 5 s): the others' rate should stay where it was,
- the same number of deliveries all to ONE destination (one recipient, one URL: an
  escalation burst to one backup), where the per-destination limit decides the rate,
- deliveries one at a time (each accepted once the one before was recorded),
- for each, the database statements per delivery (every statement the engine's
  connections ran, BEGIN, COMMIT and ROLLBACK included; counted by SQLAlchemy events) and
  the transactions per delivery,
- the local WebhookSink of `aviso up` (deploy/local/sinks.py, recording to a file) taking
  the same load from the WebhookSender, and its CPU time per request.
The receivers (aiohttp servers) run in their own processes so they do not compete with
the engine for the event loop. SQLite when no URL is given; no assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from deploy.local.common import free_port
from schemas.deliveries import DeliveryChannel
from services.common.db import is_postgres, make_engine, make_session_factory
from services.common.delivery import (
    TABLE_VERSION,
    BaseDeliveryPlan,
    Delivered,
    DeliveryEngine,
    DeliveryOrder,
    DeliveryRecord,
    EmailSender,
    EngineConfig,
    Outbound,
    SenderRegistry,
    Skip,
    SqlDeliveryStore,
    Transaction,
    WebhookOutbound,
    WebhookSender,
    create_delivery_records_table,
)
from services.common.delivery.records import delivery_records_table
from services.common.logging import configure_logging
from services.common.settings import CommonSettings

CONCURRENCY = 64


async def _serve(port_file: Path) -> None:
    """The benchmark's receiver: 204 at once, except /hang which never answers."""
    from aiohttp import web

    async def answer(request: web.BaseRequest) -> web.StreamResponse:
        await request.read()
        if request.path.startswith("/hang"):
            await asyncio.sleep(3600)
        return web.Response(status=204)

    runner = web.ServerRunner(web.Server(answer, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
    port_file.write_text(str(runner.addresses[0][1]))  # noqa: ASYNC240 - once, at start-up
    await asyncio.Event().wait()


_WEBHOOK: DeliveryChannel = "webhook"


class _CountingPlan(BaseDeliveryPlan):
    channels: Collection[DeliveryChannel] = (_WEBHOOK,)

    def __init__(self, base_url: str, expected: set[str]) -> None:
        self._base = base_url
        self.expected = expected
        self.done = asyncio.Event()

    async def resolve(self, session: AsyncSession, record: DeliveryRecord) -> Outbound | Skip:
        path = str(record.context["path"])
        return WebhookOutbound(url=self._base + path, payload={"n": path})

    async def on_delivered(
        self, tx: Transaction, record: DeliveryRecord, result: Delivered
    ) -> None:
        delivery_id = str(record.delivery_id)

        def count() -> None:
            self.expected.discard(delivery_id)
            if not self.expected:
                self.done.set()

        tx.after_commit(count)


async def _floor(base_url: str, n: int) -> float:
    """Requests/s of the production sender alone: a plain loop, CONCURRENCY in flight."""
    sender = WebhookSender(secrets=[b"bench"], timeout_s=5.0, max_connections=CONCURRENCY)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with limit:
            await sender.send(f"{base_url}/floor{i % 1000}", {"n": i}, delivery_id=str(i))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    await sender.close()
    return n / elapsed


class _Statements:
    """Statements an engine's connections run (BEGIN, COMMIT and ROLLBACK included)."""

    def __init__(self, db: AsyncEngine) -> None:
        self.statements = 0
        self.transactions = 0
        target = db.sync_engine
        event.listen(target, "before_cursor_execute", self._statement)
        event.listen(target, "begin", self._begin)
        for name in ("commit", "rollback"):
            event.listen(target, name, self._end)

    def _statement(self, _c: Any, _cur: Any, statement: str, *_: Any) -> None:
        # SQLite's BEGIN IMMEDIATE is sent from the "begin" event: counted there.
        if not statement.startswith("BEGIN"):
            self.statements += 1

    def _begin(self, _conn: Any) -> None:
        self.statements += 1
        self.transactions += 1

    def _end(self, _conn: Any) -> None:
        self.statements += 1


def _order(path: str, recipient: uuid.UUID | None = None) -> DeliveryOrder:
    return DeliveryOrder(
        delivery_id=uuid.uuid4(),
        aggregate_id=uuid.uuid4(),
        aggregate_version=1,
        recipient_id=recipient or uuid.uuid4(),
        channel="webhook",
        purpose="bulletin",
        context={"path": path},
    )


async def _table(db: AsyncEngine) -> sa.Table:
    """A fresh delivery records table for one round."""
    table = delivery_records_table(sa.MetaData(), name=f"bench_{uuid.uuid4().hex[:8]}")
    if is_postgres(db):
        async with db.begin() as conn:
            await conn.execute(sa.text('CREATE SCHEMA IF NOT EXISTS "router"'))
    async with db.begin() as conn:
        await conn.run_sync(
            lambda c: create_delivery_records_table(
                Operations(MigrationContext.configure(c)), name=table.name, version=TABLE_VERSION
            )
        )
    return table


def _bench_engine(
    db: AsyncEngine, table: sa.Table, plan: Any
) -> tuple[DeliveryEngine, SenderRegistry]:
    """The engine as the services build it, on `db`, sending to the local sink."""
    senders = SenderRegistry(
        webhook=WebhookSender(secrets=[b"bench"], timeout_s=5.0, max_connections=CONCURRENCY),
        email=EmailSender(host="127.0.0.1", port=1, sender="aviso@localhost"),
    )
    engine = DeliveryEngine(
        store=SqlDeliveryStore(sessions=make_session_factory(db), table=table),
        senders=senders,
        plan=plan,
        service="bench",
        destination_secret=b"bench",
        config=EngineConfig(max_in_flight=CONCURRENCY, per_destination=4),  # 32 at most
    )
    return engine, senders


async def _finish(
    senders: SenderRegistry, stop: asyncio.Event, task: asyncio.Task[None], *dbs: AsyncEngine
) -> None:
    """Stop the engine (its task), close its senders and the databases."""
    stop.set()
    await task
    await senders.close()
    for db in dbs:
        await db.dispose()


async def _one_at_a_time(settings: CommonSettings, base_url: str, deliveries: int) -> None:
    """Deliveries accepted one after the other, each once the one before was recorded (a
    notice at a time): the engine's statements and transactions per delivery at a low
    rate, where nothing is shared by a batch. The accepting transactions (the service's)
    run on an engine of their own, counted apart: BEGIN, the INSERT and COMMIT are the
    service's anyway; what a hand-off adds there (the plan's reads) shows beside them."""
    db, accepting = make_engine(settings, "router"), make_engine(settings, "router")
    table = await _table(db)
    plan = _CountingPlan(base_url, set())
    engine, senders = _bench_engine(db, table, plan)
    counted, accepted = _Statements(db), _Statements(accepting)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    started = time.perf_counter()
    for i in range(deliveries):
        order = _order(f"/liaison{i}")
        plan.expected.add(str(order.delivery_id))
        plan.done.clear()
        async with make_session_factory(accepting)() as session, session.begin():
            await engine.accept_many(session, [order])
        await asyncio.wait_for(plan.done.wait(), timeout=60)
    elapsed = time.perf_counter() - started
    statements, transactions = counted.statements, counted.transactions
    await _finish(senders, stop, task, db, accepting)
    label = "engine, one delivery at a time"
    print(
        f"  {label:<42} {deliveries:>6} delivered in {elapsed:6.2f} s, "
        f"{1000 * elapsed / deliveries:6.1f} ms each, "
        f"{statements / deliveries:5.2f} statements and "
        f"{transactions / deliveries:5.3f} transactions per delivery "
        f"(+ {accepted.statements / deliveries:4.2f} in the accepting transaction)"
    )


async def _round(
    settings: CommonSettings,
    base_url: str,
    deliveries: int,
    hanging: int,
    label: str,
    *,
    quiet: bool = False,
    one_destination: bool = False,
) -> None:
    db = make_engine(settings, "router")
    table = await _table(db)
    sessions = make_session_factory(db)
    backup = uuid.uuid4()
    fast = [
        _order("/backup", backup) if one_destination else _order(f"/liaison{i}")
        for i in range(deliveries)
    ]
    slow = [_order("/hang") for _ in range(hanging)]
    plan = _CountingPlan(base_url, {str(o.delivery_id) for o in fast})
    engine, senders = _bench_engine(db, table, plan)
    async with sessions() as session, session.begin():
        await engine.accept_many(session, slow + fast)  # the hanging ones are claimed first
    counted = _Statements(db)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(engine.run(stop))
    await asyncio.wait_for(plan.done.wait(), timeout=600)
    elapsed = time.perf_counter() - started
    statements, transactions = counted.statements, counted.transactions
    await _finish(senders, stop, task, db)
    if quiet:
        return
    print(
        f"  {label:<42} {deliveries:>6} delivered in {elapsed:6.2f} s = "
        f"{deliveries / elapsed:8.0f} deliveries/s, "
        f"{statements / deliveries:5.2f} statements and "
        f"{transactions / deliveries:5.3f} transactions per delivery"
    )


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _local_sink(root: Path, var: Path, n: int) -> None:
    """The WebhookSink of `aviso up`, in its own process, recording to a file."""
    webhook_port, smtp_port = free_port(), free_port()
    out = var / "sinks"
    ports = ["--webhook-port", str(webhook_port), "--smtp-port", str(smtp_port)]
    process = subprocess.Popen(  # noqa: ASYNC220, S603 - our own module, before the measurement
        [sys.executable, "-m", "deploy.local.sinks", *ports, "--out", str(out), "--secret", "b"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", webhook_port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        cpu_before = _cpu_seconds(process.pid)
        rate = await _floor(f"http://127.0.0.1:{webhook_port}", n)
        cpu_after = _cpu_seconds(process.pid)
        recorded = len((out / "webhooks.jsonl").read_text("utf-8").splitlines())
        cpu = ""
        if cpu_before is not None and cpu_after is not None:
            cpu = f" ({(cpu_after - cpu_before) / n * 1e6:.0f} us CPU/request)"
        print(
            f"  {'local WebhookSink, own process':<42} {rate:>33.0f} requests/s, "
            f"{recorded} recorded{cpu}"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


async def main(deliveries: int, hanging: int, database_url: str | None) -> None:
    configure_logging("bench", level="WARNING", fmt="console")
    var = Path(tempfile.mkdtemp(prefix="aviso-bench-delivery-"))
    port_file = var / "port"
    root = Path(__file__).resolve().parents[1]  # noqa: ASYNC240 - once, at start-up
    sink = subprocess.Popen(  # noqa: ASYNC220, S603 - our own script, before the measurement
        [sys.executable, __file__, "--serve", str(port_file)],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            await asyncio.sleep(0.05)
        base_url = f"http://127.0.0.1:{port_file.read_text()}"
        settings = CommonSettings(var_dir=var, database_url=database_url, log_level="WARNING")
        backend = "PostgreSQL" if database_url else "SQLite"
        print(
            f"delivery engine, {backend}, WebhookSender (aiohttp), "
            f"{CONCURRENCY} in flight, 4 per destination"
        )
        floor = await _floor(base_url, deliveries)
        print(f"  {'floor: WebhookSender in a plain loop':<42} {floor:>33.0f} requests/s")
        # Unprinted: the first round pays one-off costs (imports, compiled statements).
        await _round(settings, base_url, 200, 0, "", quiet=True)
        await _round(settings, base_url, deliveries, 0, "engine, all destinations healthy")
        await _round(
            settings, base_url, deliveries, hanging, f"engine, +{hanging} to one hanging endpoint"
        )
        await _round(
            settings, base_url, deliveries, 0, "engine, all to one destination",
            one_destination=True,
        )  # fmt: skip
        await _one_at_a_time(settings, base_url, min(deliveries, 200))
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    await _local_sink(root, var, deliveries)


def _cli(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--hanging", type=int, default=40)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _cli()
    if args.serve is not None:
        asyncio.run(_serve(args.serve))
    else:
        asyncio.run(main(args.deliveries, args.hanging, args.database_url))
