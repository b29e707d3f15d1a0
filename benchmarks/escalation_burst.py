"""Escalation burst: 1,000 timers due at once among 10,000 open alerts.

    python -m benchmarks.escalation_burst [--alerts 10000] [--due 1000] [--database-url URL]
                                          [--backend both|postgresql|sqlite] [--deliver]

Sets the alerts up directly through the router's repository (`domain.open_alert` applied
by `uow.alerts.apply`, so the rows are what the service writes; their setup events are
marked sent), then moves the timers of `--due` of them to one instant 2 s ahead with a
single UPDATE, while the router's escalation worker runs. Prints, in one run:
- the floor: that UPDATE of `--due` rows plus its commit (what one statement costs here),
- fired: from the due instant until every one of them had escalated (the worker's count
  of committed timers, then confirmed by one query; the last timeline `escalated` entry,
  stamped when its batch began, is printed too),
- with `--deliver` (needs KAFKA_BOOTSTRAP_SERVERS): the whole router runs (consumers,
  outbox relay, delivery, the escalation worker) and the backup is reached by webhook at
  a local sink; notified: from the due instant until the sink had every escalation.
  Whether the router has durable delivery records (`delivery_records`) is printed.
  Beside it, the sink's own floor, measured in the same run before the router starts:
  the same number of signed webhooks posted to the sink by the router's own sender
  (`WebhookSender`) with no database and no Kafka, at the concurrency the engine starts
  with for one destination (`AVISO_DELIVERY_PER_DESTINATION`) and at the most it may
  reach (`AVISO_DELIVERY_PER_DESTINATION_MAX`). The load average is printed too.

PostgreSQL from `--database-url` or DATABASE_URL (a fresh database, dropped afterwards),
and SQLite in a temporary directory (both by default). No assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from services.common.delivery import WebhookSender
from services.common.logging import configure_logging
from services.common.migrations import upgrade
from services.router.app import RouterRuntime, default_senders
from services.router.config import RouterSettings
from services.router.deps import RouterDeps
from services.router.escalation import EscalationWorker
from services.router.tables import alert_timeline, alerts
from tests.support.alerts import open_alerts, spoc_then_backup
from tests.support.infra import drop_database_async, fresh_database_async

WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105 - a local sink's, for this run only
SETUP_BATCH = 500
LEAD_S = 2.0  # the due instant is this far ahead of the UPDATE: the worker sleeps until it
WAIT_S = 3600.0  # every other wait: nothing else fires during the run
DEADLINE_S = 300.0


async def _open_alerts(deps: RouterDeps, count: int, backup_hook: str) -> list[str]:
    """Open `count` alerts (SPOC step, an hour's wait); their setup events count as sent."""
    now = deps.clock()
    document = spoc_then_backup(
        spoc=uuid.uuid4(),
        backup=uuid.uuid4(),
        spoc_channels={"email": "spoc@police.example"},
        backup_channels={"webhook_url": backup_hook},
        wait_s=WAIT_S,
    )
    async with deps.unit_of_work() as uow:
        await uow.directory.add(
            version=1, document=document, digest="bench", source="api", created_by="bench", at=now
        )
        await uow.commit()
    return await open_alerts(
        deps, count, at=now, batch=SETUP_BATCH, summary="Benchmark notice.", events_sent=True
    )


async def _make_due(deps: RouterDeps, ids: Sequence[str], at: datetime) -> float:
    """One UPDATE moving the timers of `ids` to `at`, and its commit: the floor, in seconds."""
    started = time.perf_counter()
    async with deps.sessions() as session, session.begin():
        await session.execute(
            sa.update(alerts).where(alerts.c.id.in_(list(ids))).values(next_fire_at=at)
        )
    return time.perf_counter() - started


async def _escalated(deps: RouterDeps, ids: Sequence[str]) -> int:
    async with deps.sessions() as session:
        found = await session.execute(
            sa.select(sa.func.count())
            .select_from(alerts)
            .where(alerts.c.id.in_(list(ids)), alerts.c.escalation_count >= 1)
        )
        return int(found.scalar_one())


async def _last_timeline_entry(deps: RouterDeps, ids: Sequence[str]) -> datetime:
    async with deps.sessions() as session:
        found = await session.execute(
            sa.select(sa.func.max(alert_timeline.c.at)).where(
                alert_timeline.c.alert_id.in_(list(ids)), alert_timeline.c.kind == "escalated"
            )
        )
        value = found.scalar_one()
    assert value is not None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _has_delivery_records(deps: RouterDeps) -> bool:
    async with deps.sessions() as session:
        bind = await session.connection()
        names = await bind.run_sync(lambda c: sa.inspect(c).get_table_names())
    return "delivery_records" in names


async def _wait_fired(
    deps: RouterDeps, worker: EscalationWorker, ids: Sequence[str], due: datetime
) -> float:
    """Wait until the worker has fired every alert of `ids`; seconds from `due` to then.

    The worker counts a timer once its batch has committed, so watching the counter costs
    nothing; polling the database instead (a 1,000-id query every few ms, in this process)
    competed with the worker it measures. The database confirms the count afterwards.
    """
    deadline = time.monotonic() + DEADLINE_S
    start = worker.fired_total
    while worker.fired_total - start < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {worker.fired_total - start} of {len(ids)} fired")
        await asyncio.sleep(0.002)
    fired = (datetime.now(UTC) - due).total_seconds()
    escalated = await _escalated(deps, ids)
    if escalated != len(ids):
        raise RuntimeError(f"the worker fired {len(ids)} but {escalated} rows escalated")
    return fired


class _Sink:
    """The local webhook sink (`deploy.local.sinks`) in a process of its own, so that it
    does not compete with the router for this process's event loop and GIL."""

    def __init__(self, var: Path) -> None:
        self._out = var / "sinks"
        self._offset = 0
        self._seen: list[dict[str, Any]] = []
        self._process = subprocess.Popen(  # noqa: S603 - our own module, before measuring
            [
                sys.executable,
                "-m",
                "deploy.local.sinks",
                "--webhook-port",
                "0",
                "--smtp-port",
                "0",
                "--out",
                str(self._out),
                "--secret",
                WEBHOOK_SECRET,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        banner = self._process.stdout.readline()
        found = re.search(r"webhook sink on (http://\S+?)/?,", banner)
        if found is None:
            raise RuntimeError(f"unexpected sink banner: {banner!r}")
        self.base_url = found.group(1)

    def received(self) -> list[dict[str, Any]]:
        """Everything the sink recorded so far (read incrementally: the poll shares this
        process's event loop with the router, so re-reading the whole file every time
        would slow down what it measures)."""
        path = self._out / "webhooks.jsonl"
        if not path.exists():
            return self._seen
        with path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # not the line the sink is writing now
        self._offset += len(complete)
        self._seen.extend(json.loads(line) for line in complete.splitlines() if line)
        return self._seen

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


async def _wait_notified(sink: _Sink, ids: Sequence[str], due: datetime) -> float:
    """Poll the sink until it holds an escalation for every alert; seconds from `due`."""
    wanted = set(ids)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        received = [r for r in sink.received() if isinstance(r["payload"], dict)]
        got = {r["payload"].get("alert_id") for r in received}
        if wanted <= got:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(wanted & got)} of {len(wanted)} notified")
        await asyncio.sleep(0.05)
    last = max(
        datetime.fromisoformat(r["received_at"])
        for r in received
        if r["payload"].get("alert_id") in wanted
    )
    return (last - due).total_seconds()


async def _sink_floor(url: str, count: int, concurrency: int) -> float:
    """Seconds the sink takes to absorb `count` webhooks sent `concurrency` at a time by
    the router's sender, with nothing else going on (no database, no Kafka)."""
    sender = WebhookSender(secrets=[WEBHOOK_SECRET.encode()], max_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    payload = {"type": "alert.escalated", "floor": True, "body": "x" * 400}

    async def one(i: int) -> None:
        async with gate:
            await sender.send(url, payload, delivery_id=str(uuid.UUID(int=i)))

    try:
        await one(0)  # the connection pool warmed up, as the engine's is by the time it fires
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(1, count + 1)))
        return time.perf_counter() - started
    finally:
        await sender.close()


def _settings(
    var: Path, database_url: str | None, kafka: str | None, prefix: str, smtp_port: int
) -> RouterSettings:
    values: dict[str, Any] = {
        "var_dir": var,
        "database_url": database_url,
        "log_level": "WARNING",
        "development_mode": True,  # a throw-away local run: development secrets are fine
        "link_secret": "bench-link-secret",
        "webhook_secrets": [WEBHOOK_SECRET],
        "router_group_prefix": prefix,
        "smtp_port": smtp_port,
    }
    if kafka:
        values["kafka_bootstrap_servers"] = kafka
    return RouterSettings(**values)


async def _run(
    label: str, database_url: str | None, *, alerts_n: int, due_n: int, kafka: str | None
) -> None:
    var = Path(tempfile.mkdtemp(prefix="aviso-bench-escalation-"))
    prefix = f"bench-escalation-{uuid.uuid4().hex[:8]}"
    sink = _Sink(var)
    try:
        settings = _settings(var, database_url, kafka, prefix, smtp_port=1)
        runtime = RouterRuntime(settings=settings, senders=default_senders(settings))
        deps = runtime.deps
        await upgrade(settings, "auth")
        await upgrade(settings, "router")
        started = time.perf_counter()
        ids = await _open_alerts(deps, alerts_n, sink.base_url + "/backup")
        setup_s = time.perf_counter() - started
        print(f"{label}: {alerts_n} open alerts set up in {setup_s:.1f} s; {due_n} due at once")
        if kafka:
            for concurrency in sorted(
                {settings.delivery_per_destination, settings.delivery_per_destination_max}
            ):
                floor_s = await _sink_floor(sink.base_url + "/floor", due_n, concurrency)
                print(
                    f"  sink floor: {due_n} webhooks, {concurrency:2d} at a time, no Aviso "
                    f"{floor_s * 1000:8.1f} ms"
                )
        if kafka:
            from tests.integration.router.router_support import position_groups_at_end

            await position_groups_at_end(kafka, prefix)
            worker = runtime.escalation
            await runtime.start(migrate=False)
        else:
            stop = asyncio.Event()
            worker = EscalationWorker(deps)
            task = asyncio.create_task(worker.run(stop))
        try:
            await asyncio.sleep(1.0)  # the worker is idle, sleeping at poll pace
            due = datetime.now(UTC) + timedelta(seconds=LEAD_S)
            floor = await _make_due(deps, ids[:due_n], due)
            fired = await _wait_fired(deps, worker, ids[:due_n], due)
            last_entry = (await _last_timeline_entry(deps, ids[:due_n]) - due).total_seconds()
            print(f"  floor: one UPDATE of {due_n} rows + commit   {floor * 1000:8.1f} ms")
            print(f"  all {due_n} fired (committed, observed)     {fired * 1000:8.1f} ms after due")
            print(
                f"  last `escalated` timeline entry           {last_entry * 1000:8.1f} ms after due"
            )
            if kafka:
                load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
                records = await _has_delivery_records(deps)
                path = "delivery records (engine)" if records else "Kafka delivery requests"
                notified = await _wait_notified(sink, ids[:due_n], due)
                print(
                    f"  all {due_n} notified at the sink ({path}) "
                    f"{notified * 1000:8.1f} ms after due"
                )
                print(f"  load average (1, 5, 15 min)               {load}")
        finally:
            if kafka:
                await runtime.stop()
            else:
                stop.set()
                await task
                await runtime.senders.close()
            await runtime.engine.dispose()
            await runtime.auth_engine.dispose()
    finally:
        sink.stop()


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", level="WARNING", fmt="console")
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") if args.deliver else None
    if args.deliver and not kafka:
        raise SystemExit("--deliver needs KAFKA_BOOTSTRAP_SERVERS")
    url = args.database_url or os.environ.get("DATABASE_URL")
    sizes = {"alerts_n": args.alerts, "due_n": args.due, "kafka": kafka}
    if url and args.backend in ("both", "postgresql"):
        database = await fresh_database_async(url, prefix="aviso_bench")
        try:
            await _run("PostgreSQL", database, **sizes)
        finally:
            await drop_database_async(database)
    if args.backend in ("both", "sqlite"):
        await _run("SQLite", None, **sizes)


def _cli(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--backend", choices=("both", "postgresql", "sqlite"), default="both")
    parser.add_argument("--deliver", action="store_true", help="run the whole router")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(_cli()))
