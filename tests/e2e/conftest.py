"""Fixtures of the end-to-end fault tests (every name starts with `fault_`).

The fault tests stop and restart Kafka and PostgreSQL under a running service, so
they cannot use the suite's shared broker and server: `fault_kafka` and
`fault_postgres` start a broker and a cluster of their own from `deploy.local`, in
temporary directories, and restart them on the same port and data directory so that
clients reconnect to the address they already hold (or freeze the cluster with
SIGSTOP, `FaultPostgres.frozen`). `fault_intake` runs intake as a real OS process
against both.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from deploy.local import kafka as local_kafka
from deploy.local import postgres as local_postgres
from deploy.local.common import run_sync
from schemas.topics import ALL_TOPICS
from services.common.auth import Role
from services.common.settings import CommonSettings
from tests.integration.intake.intake_support import KEY_K1
from tests.support import infra
from tests.support.apps import issue_test_token
from tests.support.processes import ServiceProcess

# The addresses of an external broker or server make deploy.local start nothing;
# these fixtures need processes they own, whatever the environment says.
_EXTERNAL_ADDRESSES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "AVISO_KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "AVISO_DATABASE_URL",
)


@contextmanager
def _local_only() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in _EXTERNAL_ADDRESSES:
            patch.delenv(name, raising=False)
        yield


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@dataclass
class FaultPostgres:
    """A PostgreSQL cluster this module owns and may stop and restart."""

    data_dir: Path
    url: str

    @property
    def port(self) -> int:
        port = make_url(self.url).port
        assert port is not None
        return port

    @property
    def running(self) -> bool:
        return local_postgres.status(data_dir=self.data_dir) is not None

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: sessions are cut, the port closes."""
        local_postgres.stop(data_dir=self.data_dir)

    def restart(self) -> None:
        """Start again on the same port and data directory (the URL stays valid)."""
        with _local_only():
            url = local_postgres.start(port=self.port, data_dir=self.data_dir, fast=True)
        assert make_url(url).port == self.port, f"restarted on another port: {url}"

    def ensure_running(self) -> None:
        if not self.running:
            self.restart()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the postmaster and every backend: the port stays open, nothing answers.

        This is a hung server or a network partition rather than a stopped one: TCP
        connections are accepted or stay established, but no reply ever comes.
        """
        pid_file = local_postgres.PostgresLayout(self.data_dir).data / "postmaster.pid"
        postmaster = int(pid_file.read_text(encoding="ascii").splitlines()[0])
        pids = [postmaster, *_children_of(postmaster)]
        try:
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            yield
        finally:
            for pid in pids:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


def _children_of(parent: int) -> list[int]:
    """Pids whose parent is `parent` (read from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


@dataclass
class FaultKafka:
    """A Kafka broker this module owns and may stop and restart."""

    data_dir: Path
    bootstrap: str

    @property
    def running(self) -> bool:
        return local_kafka.status(data_dir=self.data_dir) is not None

    def stop(self) -> None:
        """SIGTERM the broker and wait until it has exited."""
        local_kafka.stop(data_dir=self.data_dir, timeout=15.0)

    def restart(self) -> None:
        """Start again on the same port and the same (already formatted) data directory."""
        with _local_only():
            bootstrap = local_kafka.start(port=_port_of(self.bootstrap), data_dir=self.data_dir)
        assert bootstrap == self.bootstrap, f"restarted on another address: {bootstrap}"

    def ensure_running(self) -> None:
        if not self.running:
            self.restart()


@pytest.fixture(scope="module")
def fault_postgres() -> Iterator[FaultPostgres]:
    """A private PostgreSQL cluster (fsync off) in a temporary directory."""
    # /tmp rather than pytest's tmp_path: the postgres system user must reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="aviso-fault-postgres-"))
    try:
        with _local_only():
            url = local_postgres.start(port=0, data_dir=data_dir, fast=True)
    except Exception as exc:
        shutil.rmtree(data_dir, ignore_errors=True)
        infra.infra_unavailable("PostgreSQL for the fault tests", exc)
        raise
    try:
        yield FaultPostgres(data_dir=data_dir, url=url)
    finally:
        local_postgres.purge(data_dir=data_dir)


@pytest.fixture(scope="module")
def fault_kafka() -> Iterator[FaultKafka]:
    """A private single-node Kafka broker in a temporary directory, topics created."""
    data_dir = Path(tempfile.mkdtemp(prefix="aviso-fault-kafka-"))
    try:
        with _local_only():
            bootstrap = local_kafka.start(port=0, data_dir=data_dir)
        run_sync(lambda: local_kafka.ensure_topics(bootstrap, ALL_TOPICS))
    except Exception as exc:
        local_kafka.stop(data_dir=data_dir, timeout=15.0)
        shutil.rmtree(data_dir, ignore_errors=True)
        infra.infra_unavailable("Kafka for the fault tests", exc)
        raise
    try:
        yield FaultKafka(data_dir=data_dir, bootstrap=bootstrap)
    finally:
        local_kafka.stop(data_dir=data_dir, timeout=15.0)
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class FaultIntake:
    """Intake as a real process, a field-office and an ops token, and an HTTP client."""

    process: ServiceProcess
    client: httpx.AsyncClient
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def submit(self, body: dict[str, Any]) -> tuple[httpx.Response, float]:
        """POST /v1/notices as the field office; returns the response and its latency in s."""
        began = time.monotonic()
        response = await self.client.post(
            "/v1/notices", json=body, headers=self.auth("field_office")
        )
        return response, time.monotonic() - began

    async def read(self, notice_id: str) -> httpx.Response:
        """GET /v1/notices/{id} as ops (metadata only)."""
        return await self.client.get(f"/v1/notices/{notice_id}", headers=self.auth("ops"))

    async def ready(self) -> tuple[httpx.Response, float]:
        began = time.monotonic()
        response = await self.client.get("/internal/ready")
        return response, time.monotonic() - began

    async def outbox_pending(self) -> float:
        """The `aviso_outbox_pending` gauge from /metrics (sampled from the database on scrape)."""
        response = await self.client.get("/metrics")
        response.raise_for_status()
        for line in response.text.splitlines():
            if line.startswith("aviso_outbox_pending{") and 'service="intake"' in line:
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no aviso_outbox_pending in /metrics:\n{response.text[:2000]}")


@pytest.fixture
async def fault_intake(
    fault_postgres: FaultPostgres, fault_kafka: FaultKafka, tmp_path: Path
) -> AsyncIterator[FaultIntake]:
    """Intake serving on a fresh database of `fault_postgres` and on `fault_kafka`."""
    database_url = await infra.fresh_database_async(fault_postgres.url, prefix="aviso_fault")
    settings = CommonSettings(database_url=database_url, var_dir=tmp_path / "var")
    tokens = {
        "field_office": await issue_test_token(
            settings, Role.FIELD_OFFICE, "SF field office system", "fo-sf"
        ),
        "ops": await issue_test_token(settings, Role.OPS, "Operations"),
    }
    env = {
        "AVISO_DATABASE_URL": database_url,
        "DATABASE_URL": database_url,
        "AVISO_KAFKA_BOOTSTRAP_SERVERS": fault_kafka.bootstrap,
        "KAFKA_BOOTSTRAP_SERVERS": fault_kafka.bootstrap,
        "AVISO_VAR_DIR": str(tmp_path / "var"),
        "AVISO_INTAKE_ENCRYPTION_KEYS": f"k1:{KEY_K1}",
        "AVISO_INTAKE_SWEEP_INTERVAL_S": "3600",
        "AVISO_SHUTDOWN_GRACE_S": "5",
    }
    process = ServiceProcess("intake", env, tmp_path / "logs")
    await asyncio.to_thread(process.start)
    try:
        async with httpx.AsyncClient(base_url=process.url, timeout=30.0) as client:
            yield FaultIntake(process, client, database_url, tokens)
    finally:
        # A test that failed mid-outage must not leave the next one without its infrastructure.
        await asyncio.to_thread(fault_postgres.ensure_running)
        await asyncio.to_thread(fault_kafka.ensure_running)
        await asyncio.to_thread(process.terminate, 15.0)
        await infra.drop_database_async(database_url)
