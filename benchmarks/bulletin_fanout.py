"""Bulletin fan-out: one approved bulletin to N liaisons, each with a webhook of its own.

    python -m benchmarks.bulletin_fanout [--liaisons 1000 10000] [--database sqlite|postgres]

For each N: a department file with N liaisons is generated into a temporary directory
(each liaison's webhook is its own path on one fast local sink), the rumor_control app
starts in this process (real Kafka, real database, its delivery engine as in production),
a vetter drafts and another approves one bulletin. Printed beside each other:

- the sink's floor: requests/s the service's own WebhookSender reaches in a plain loop
  against the same sink at the engine's concurrency (`AVISO_DELIVERY_MAX_IN_FLIGHT`),
  with no engine and no database,
- how long the approval request took (it accepts the N delivery records in its own
  transaction),
- the time from the approval request to the last delivery recorded, and deliveries/s over
  that time (goal: >= 1,000/s),
- the CPU time this process (the service with its engine, and the SQLite threads) used
  from the approval to the last delivery, per 1,000 deliveries: a figure the load of a
  shared machine changes far less than the rate.

The sink runs in its own process (an asyncio HTTP/1.1 server), so it does not compete with
the engine for this event loop. Settings come from the environment like a service's:
KAFKA_BOOTSTRAP_SERVERS is needed; `--database postgres` needs DATABASE_URL (a fresh
database is created and dropped), `sqlite` uses files in a temporary directory. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

from services.common.auth import Role
from services.common.db import make_engine
from services.common.delivery import WebhookSender
from services.common.logging import configure_logging
from services.rumor_control.app import create_app
from services.rumor_control.config import PACKAGE_DIR, RumorControlSettings
from services.rumor_control.subscribers import group_id
from services.rumor_control.tables import delivery_records
from tests.integration.rumor_control.rumor_harness import skip_history
from tests.support.apps import issue_test_token, running_app
from tests.support.infra import drop_database_async, fresh_database_async

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 900.0


async def _serve(port_file: Path) -> None:
    from tests.integration.common.delivery.receiver import Receiver

    receiver = await Receiver().start()  # answers 204 at once
    port_file.write_text(str(receiver.port))  # noqa: ASYNC240 - once, at start-up
    await asyncio.Event().wait()


def _department(directory: Path, base_url: str, liaisons: int) -> Path:
    """The bundled department with `liaisons` webhook liaisons and no e-mail recipient."""
    data: dict[str, Any] = yaml.safe_load((PACKAGE_DIR / "department.yaml").read_text("utf-8"))
    data["liaisons"] = [
        {
            "id": str(uuid.uuid4()),
            "name": f"Liaison {n}",
            "language": "es" if n % 2 else "en",
            "webhook_url": f"{base_url}/liaison/{n}",
        }
        for n in range(liaisons)
    ]
    data["radio_desk"] = None
    path = directory / "department.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return path


async def _floor(settings: RumorControlSettings, base_url: str, n: int) -> float:
    """Requests/s of the service's WebhookSender alone against the sink (no engine, no DB)."""
    sender = WebhookSender.from_settings(settings)
    limit = asyncio.Semaphore(settings.delivery_max_in_flight)

    async def one(i: int) -> None:
        async with limit:
            await sender.send(f"{base_url}/floor/{i}", {"n": i}, delivery_id=str(i))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    await sender.close()
    return n / elapsed


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _bulletin(client: httpx.AsyncClient, tokens: dict[str, str]) -> str:
    """A rumor reported and assessed False: its bulletin's id (drafted by vetter A)."""
    observed = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()
    report = await client.post(
        "/v1/rumors",
        json={"claim": "Dicen que la migra está en la tienda", "place": "Riverside",
              "channel": "phone_line", "observed_at": observed},
        headers={"Authorization": f"Bearer {tokens['liaison']}"},
    )  # fmt: skip
    report.raise_for_status()
    assessed = await client.post(
        f"/v1/rumors/{report.json()['rumor_id']}/assess",
        json={"assessment": "False"},
        headers={"Authorization": f"Bearer {tokens['vetter_a']}"},
    )
    assessed.raise_for_status()
    bulletin_id: str = assessed.json()["bulletin_id"]
    return bulletin_id


async def _progress(
    settings: RumorControlSettings, bulletin_id: str, total: int
) -> tuple[int, int, datetime | None]:
    """Poll the records until none is left to send: (delivered, failed, last delivered_at)."""
    engine = make_engine(settings, "rumor_control")
    t = delivery_records
    statement = (
        sa.select(t.c.state, sa.func.count(), sa.func.max(t.c.delivered_at))
        .where(t.c.aggregate_id == bulletin_id)
        .group_by(t.c.state)
    )
    deadline = time.monotonic() + DEADLINE_S
    try:
        while True:
            async with engine.connect() as connection:
                rows = (await connection.execute(statement)).all()
            counts = {row[0]: row[1] for row in rows}
            last = next((row[2] for row in rows if row[0] == "delivered"), None)
            delivered, failed = counts.get("delivered", 0), counts.get("failed", 0)
            print(f"\r    delivered {delivered:>6}/{total}  failed {failed}", end="", flush=True)
            if delivered + failed >= total or time.monotonic() > deadline:
                print()
                if last is not None and last.tzinfo is None:
                    last = last.replace(tzinfo=UTC)  # SQLite hands back naive UTC
                return delivered, failed, last
            # Not too often: the figures come from the records' own delivered_at, and on
            # SQLite every poll takes the database's write lock from the engine it measures.
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


async def _round(liaisons: int, base_url: str, database: str, var: Path, bootstrap: str) -> None:
    directory = var / f"n{liaisons}"
    directory.mkdir(parents=True)
    database_url = None
    if database == "postgres":
        database_url = await fresh_database_async(os.environ["DATABASE_URL"])
    try:
        settings = RumorControlSettings(
            var_dir=directory / "var", database_url=database_url,
            kafka_bootstrap_servers=bootstrap, log_level="WARNING", log_format="console",
            rumor_department_file=_department(directory, base_url, liaisons),
            rumor_group_prefix=f"bench-{uuid.uuid4().hex[:8]}.",
            public_base_url="http://bench.example",
            development_mode=True,  # a throw-away local run: development secrets are fine
        )  # fmt: skip
        concurrency = settings.delivery_max_in_flight
        floor = await _floor(settings, base_url, min(liaisons, 5000))
        tokens = {
            "vetter_a": await issue_test_token(settings, Role.VETTER, "Vetter A", "vetter-a"),
            "vetter_b": await issue_test_token(settings, Role.VETTER, "Vetter B", "vetter-b"),
            "liaison": await issue_test_token(settings, Role.LIAISON, "Phone line", "phone"),
        }
        prefix = settings.rumor_group_prefix
        await skip_history(bootstrap, {group_id(prefix): ("aviso.notices.v1", "aviso.alerts.v1")})
        async with running_app(create_app(settings)) as client:
            bulletin_id = await _bulletin(client, tokens)
            started = datetime.now(UTC)
            cpu_before = _cpu_s()
            approved = await client.post(
                f"/v1/bulletins/{bulletin_id}/approve",
                json={"sign_off": ["en", "es"]},
                headers={"Authorization": f"Bearer {tokens['vetter_b']}"},
            )
            approval_s = (datetime.now(UTC) - started).total_seconds()
            approved.raise_for_status()
            delivered, failed, last = await _progress(settings, bulletin_id, liaisons)
            cpu_s = _cpu_s() - cpu_before
        total_s = (last - started).total_seconds() if last else float("nan")
        print(f"  {liaisons} liaisons, {database}:")
        print(f"    sink floor (WebhookSender alone, {concurrency} in flight)"
              f" {floor:8.0f} requests/s")  # fmt: skip
        print(f"    approval request (accepts {liaisons} records)   {approval_s:8.2f} s")
        print(f"    approval -> last delivery                  {total_s:8.2f} s")
        print(f"    deliveries/s (approval -> last delivery)   {delivered / total_s:8.0f}"
              f"   ({delivered} delivered, {failed} failed; goal >= 1000/s)")  # fmt: skip
        per_1000 = cpu_s * 1000 / max(delivered, 1)
        load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"    CPU s of this process per 1,000 deliveries {per_1000:8.2f}"
              f"   (load average {load})")  # fmt: skip
    finally:
        if database_url is not None:
            await drop_database_async(database_url)


async def main(liaisons: list[int], database: str) -> None:
    configure_logging("bench", level="WARNING", fmt="console")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        raise SystemExit("KAFKA_BOOTSTRAP_SERVERS is needed (the rumor_control app starts)")
    if database == "postgres" and not os.environ.get("DATABASE_URL"):
        raise SystemExit("--database postgres needs DATABASE_URL")
    var = Path(tempfile.mkdtemp(prefix="aviso-bench-fanout-"))
    port_file = var / "port"
    sink = subprocess.Popen(  # noqa: ASYNC220, S603 - our own script, before the measurement
        [sys.executable, "-m", "benchmarks.bulletin_fanout", "--serve", str(port_file)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            await asyncio.sleep(0.05)
        base_url = f"http://127.0.0.1:{port_file.read_text()}"
        print(f"bulletin fan-out through rumor_control's delivery engine ({database})")
        for n in liaisons:
            await _round(n, base_url, database, var, bootstrap)
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def _cli(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--liaisons", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _cli()
    if args.serve is not None:
        asyncio.run(_serve(args.serve))
    else:
        asyncio.run(main(args.liaisons, args.database))
