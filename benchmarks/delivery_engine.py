"""Delivery engine throughput: N webhook deliveries to a local sink, with and without a hang.

    python benchmarks/delivery_engine.py [--deliveries 1000] [--hanging 40] [--database-url URL]

Prints, in one run:
- the sink's floor: requests/s a plain pooled httpx loop reaches at the same concurrency,
- the engine's deliveries/s (accepted records -> all recorded as delivered), each to its
  own URL (a fan-out to N liaisons),
- the same with `--hanging` extra records to one endpoint that never answers (the
  webhook timeout is 5 s): the others' rate should stay where it was.
The sink runs in its own process (an asyncio HTTP/1.1 server) so it is not the engine's
competitor for the event loop. SQLite when no URL is given; no assertions.
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
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import is_postgres, make_engine, make_session_factory
from services.common.delivery import (
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
    from tests.integration.common.delivery.receiver import Receiver

    async def answer(path: str, delivery_id: str, nth: int) -> int:
        if path.startswith("/hang"):
            await asyncio.sleep(3600)
        return 204

    receiver = await Receiver(answer=answer).start()
    port_file.write_text(str(receiver.port))  # noqa: ASYNC240 - once, at start-up
    await asyncio.Event().wait()


class _CountingPlan(BaseDeliveryPlan):
    channels = ("webhook",)

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


class _AiohttpWebhook:
    """The same signed POST over aiohttp, to tell the engine's cost from httpx's pool."""

    def __init__(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONCURRENCY),
            timeout=aiohttp.ClientTimeout(total=5.0),
        )

    async def send(self, url: str, payload: Any, *, delivery_id: str) -> int:
        import aiohttp

        from services.common.delivery import DeliveryError

        try:
            async with self._session.post(
                url, json=payload, headers={"Aviso-Delivery-Id": delivery_id}
            ) as response:
                await response.read()
                return response.status
        except (TimeoutError, aiohttp.ClientError):
            raise DeliveryError("webhook timed out", reason="timeout") from None

    async def close(self) -> None:
        await self._session.close()


async def _aiohttp_floor(base_url: str, n: int) -> float:
    transport = _AiohttpWebhook()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with limit:
            await transport.send(f"{base_url}/floor{i % 1000}", {}, delivery_id=str(i))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    await transport.close()
    return n / (time.perf_counter() - started)


async def _floor(base_url: str, n: int) -> float:
    limit = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one(i: int) -> None:
            async with limit:
                await client.post(f"{base_url}/floor{i % 1000}", content=b"{}")

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - started)


def _order(path: str) -> DeliveryOrder:
    return DeliveryOrder(
        delivery_id=uuid.uuid4(),
        aggregate_id=uuid.uuid4(),
        aggregate_version=1,
        recipient_id=uuid.uuid4(),
        channel="webhook",
        purpose="bulletin",
        context={"path": path},
    )


async def _round(
    settings: CommonSettings,
    base_url: str,
    deliveries: int,
    hanging: int,
    label: str,
    *,
    use_aiohttp: bool = False,
) -> None:
    db = make_engine(settings, "router")
    table = delivery_records_table(sa.MetaData(), name=f"bench_{uuid.uuid4().hex[:8]}")
    if is_postgres(db):
        async with db.begin() as conn:
            await conn.execute(sa.text('CREATE SCHEMA IF NOT EXISTS "router"'))
    async with db.begin() as conn:
        await conn.run_sync(
            lambda c: create_delivery_records_table(
                Operations(MigrationContext.configure(c)), name=table.name
            )
        )
    sessions = make_session_factory(db)
    fast = [_order(f"/liaison{i}") for i in range(deliveries)]
    slow = [_order("/hang") for _ in range(hanging)]
    plan = _CountingPlan(base_url, {str(o.delivery_id) for o in fast})
    webhook: Any = (
        _AiohttpWebhook()
        if use_aiohttp
        else WebhookSender(secrets=[b"bench"], timeout_s=5.0, max_connections=CONCURRENCY)
    )
    senders = SenderRegistry(
        webhook=webhook,
        email=EmailSender(host="127.0.0.1", port=1, sender="aviso@localhost"),
    )
    engine = DeliveryEngine(
        store=SqlDeliveryStore(sessions=sessions, table=table),
        senders=senders,
        plan=plan,
        service="bench",
        destination_secret=b"bench",
        config=EngineConfig(max_in_flight=CONCURRENCY, per_destination=4),
    )
    async with sessions() as session, session.begin():
        for o in slow + fast:  # the hanging ones first: they are claimed first
            await engine.accept(session, o)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(engine.run(stop))
    await asyncio.wait_for(plan.done.wait(), timeout=600)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    await senders.close()
    await db.dispose()
    print(
        f"  {label:<38} {deliveries:>6} delivered in {elapsed:6.2f} s = "
        f"{deliveries / elapsed:8.0f} deliveries/s"
    )


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
        print(f"delivery engine, {backend}, {CONCURRENCY} in flight, 4 per destination")
        floor = await _floor(base_url, deliveries)
        print(f"  {'sink floor (plain httpx loop)':<38} {floor:>29.0f} requests/s")
        await _round(settings, base_url, deliveries, 0, "engine, all destinations healthy")
        await _round(
            settings, base_url, deliveries, hanging, f"engine, +{hanging} to one hanging endpoint"
        )
        try:
            import aiohttp  # noqa: F401 - optional: not a dependency of Aviso
        except ImportError:
            print("  (aiohttp not installed: no comparison with another HTTP client)")
            return
        floor = await _aiohttp_floor(base_url, deliveries)
        print(f"  {'sink floor (plain aiohttp loop)':<38} {floor:>29.0f} requests/s")
        await _round(settings, base_url, deliveries, 0, "engine+aiohttp, healthy", use_aiohttp=True)
        await _round(
            settings,
            base_url,
            deliveries,
            hanging,
            f"engine+aiohttp, +{hanging} hanging",
            use_aiohttp=True,
        )
    finally:
        sink.terminate()
        sink.wait(timeout=10)


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
