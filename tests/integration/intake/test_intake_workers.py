"""Intake served by two worker processes on one port (`AVISO_INTAKE_WORKERS=2`).

`aviso serve intake` runs for real (a supervisor and two spawned workers) on a fresh
PostgreSQL database and the real broker. Requests arrive on new connections, so the kernel
spreads them over both workers (SO_REUSEPORT). Proved: both workers answer; `/metrics`
counts every submission whichever worker is scraped; the audit chain, sealed by the
leading worker alone, verifies with every entry both workers wrote; and a SIGTERM in the
middle of a stream of submissions loses none that was answered 201.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from services.common.auth import Role
from services.common.db import make_engine, make_session_factory
from services.intake.audit import ChainReport, verify_chain
from services.intake.config import IntakeSettings
from tests.integration.intake.intake_support import KEY_K1, notice_body
from tests.support.apps import issue_test_token
from tests.support.kafka_io import wait_for
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

_AUDIT_KEY = "workers-test-audit-key-0123456789abcdef"


def _env(pg_database: str, kafka_bootstrap: str, tmp_path: Path) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATABASE_URL": pg_database,
        "AVISO_VAR_DIR": str(tmp_path / "var"),
        "AVISO_DEVELOPMENT_MODE": "true",
        "AVISO_INTAKE_WORKERS": "2",
        "AVISO_INTAKE_ENCRYPTION_KEYS": f"k1:{KEY_K1}",
        "AVISO_INTAKE_AUDIT_KEY": _AUDIT_KEY,
        "AVISO_INTAKE_AUDIT_SEAL_INTERVAL_S": "0.2",
        "AVISO_INTAKE_SWEEP_INTERVAL_S": "3600",
        "AVISO_INTAKE_GROUP_PREFIX": f"intake-workers-{uuid.uuid4().hex[:8]}",
        "AVISO_SHUTDOWN_GRACE_S": "5",
    }


async def _submit(url: str, token: str) -> httpx.Response:
    # A client (and so a connection) per request: the kernel picks a worker per connection.
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await client.post(
            "/v1/notices", json=notice_body(), headers={"Authorization": f"Bearer {token}"}
        )


async def _scrape(url: str) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        text = (await client.get("/metrics")).text
    found = re.search(
        r'^aviso_http_requests_total\{method="POST",route="/v1/notices",'
        r'service="intake",status="201"\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


async def _database(settings: IntakeSettings, query: str) -> list[Any]:
    engine = make_engine(settings, "intake")
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(sa.text(query)))
    finally:
        await engine.dispose()


async def _chain(settings: IntakeSettings) -> ChainReport:
    engine = make_engine(settings, "intake")
    try:
        async with make_session_factory(engine)() as session:
            return await verify_chain(session, key=_AUDIT_KEY.encode())
    finally:
        await engine.dispose()


@pytest.fixture
def settings(
    pg_database: str, kafka_bootstrap: str, make_settings: Callable[..., Any]
) -> IntakeSettings:
    built: IntakeSettings = make_settings(
        IntakeSettings,
        database_url=pg_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        intake_encryption_keys=SecretStr(f"k1:{KEY_K1}"),
    )
    return built


async def test_two_workers_serve_count_and_seal_as_one(
    settings: IntakeSettings, pg_database: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    token = await issue_test_token(settings, Role.FIELD_OFFICE, "Field office", "fo-workers")
    intake = ServiceProcess("intake", _env(pg_database, kafka_bootstrap, tmp_path), tmp_path)
    await asyncio.to_thread(intake.start)
    try:
        responses = await asyncio.gather(*(_submit(intake.url, token) for _ in range(40)))
        assert [r.status_code for r in responses] == [201] * 40, responses[0].text

        # Both workers answered: each request's line names its worker.
        served_by = {
            record["worker"]
            for record in intake.log_records()
            if record.get("event") == "notice.received" and record.get("http_status") == 201
        }
        assert served_by == {0, 1}
        # Whichever worker answers the scrape, it counts the submissions of both.
        assert [await _scrape(intake.url) for _ in range(6)] == [40.0] * 6

        # One sealer chained the entries both workers wrote: nothing pending, chain intact.
        async def sealed() -> bool:
            report = await _chain(settings)
            return report.intact and report.entries == 40 and report.pending == 0

        await wait_for(sealed, timeout=30)
    finally:
        assert await asyncio.to_thread(intake.terminate, 40.0) == 0
    # The group's metrics files went with it.
    assert not list((tmp_path / "var" / "run").glob("intake-*"))


async def test_a_sigterm_mid_stream_loses_no_201(
    settings: IntakeSettings, pg_database: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    token = await issue_test_token(settings, Role.FIELD_OFFICE, "Field office", "fo-workers")
    intake = ServiceProcess("intake", _env(pg_database, kafka_bootstrap, tmp_path), tmp_path)
    await asyncio.to_thread(intake.start)
    accepted: list[str] = []
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            try:
                response = await _submit(intake.url, token)
            except httpx.HTTPError:
                await asyncio.sleep(0.05)  # the port closed: the group is stopping
                continue
            if response.status_code == 201:
                accepted.append(response.json()["id"])

    clients = [asyncio.create_task(client()) for _ in range(8)]
    try:
        await wait_for(lambda: len(accepted) >= 30, timeout=60)
        exit_code = await asyncio.to_thread(intake.terminate, 40.0)
    finally:
        stop.set()
        for task in clients:
            with contextlib.suppress(Exception):
                await task
    assert exit_code == 0
    rows = await _database(settings, "SELECT id FROM notices")
    assert {str(row[0]) for row in rows} >= set(accepted)
    # The leader stopped last: its final seal took what the followers wrote before they went.
    report = await _chain(settings)
    assert report.intact, report.problem
    assert (report.entries, report.pending) == (len(rows), 0)


async def test_workers_stop_when_their_supervisor_is_killed(
    settings: IntakeSettings, pg_database: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    intake = ServiceProcess("intake", _env(pg_database, kafka_bootstrap, tmp_path), tmp_path)
    await asyncio.to_thread(intake.start)
    (started,) = [r for r in intake.log_records() if r.get("event") == "serve.workers_started"]
    workers = started["pids"]
    assert len(workers) == 2
    await asyncio.to_thread(intake.kill)  # SIGKILL: the supervisor stops nothing itself

    def running(pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat[stat.rindex(")") + 2] != "Z"  # a zombie has exited, unreaped

    def gone() -> bool:
        return not any(running(pid) for pid in workers)

    await wait_for(gone, timeout=30)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=intake.url, timeout=5) as client:
            await client.get("/internal/alive")
