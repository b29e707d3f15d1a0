"""Real Kafka and PostgreSQL for the test suite (never mocks).

Each context manager yields an address, trying in order:

1. the environment (``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL``), as set by
   ``.ci/run`` or a developer pointing at their own services;
2. testcontainers, when a Docker engine answers ``docker info``;
3. the project's own local services (``deploy.local``) on free ports in a
   temporary directory, stopped and deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from deploy.local import kafka as local_kafka
from deploy.local import postgres as local_postgres
from deploy.local.common import run_sync

__all__ = [
    "asyncpg_dsn",
    "docker_available",
    "drop_database",
    "drop_database_async",
    "fresh_database",
    "fresh_database_async",
    "infra_unavailable",
    "kafka_bootstrap",
    "postgres_url",
]

KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
POSTGRES_IMAGE = "postgres:16-alpine"


def infra_unavailable(what: str, exc: BaseException) -> None:
    """Skip the test when `what` cannot be had, or fail it under AVISO_REQUIRE_INFRA=1 (CI)."""
    import pytest

    message = f"{what} unavailable: {type(exc).__name__}: {exc}"
    if os.environ.get("AVISO_REQUIRE_INFRA") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@cache
def docker_available() -> bool:
    """Return True if a Docker engine answers (not merely if the client is installed)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        probe = subprocess.run(
            [docker, "info"], capture_output=True, timeout=15, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@contextlib.contextmanager
def kafka_bootstrap() -> Iterator[str]:
    """Yield the bootstrap address of a real Kafka broker for the duration of the block."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        yield external
        return
    if docker_available():
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:  # testcontainers < 4.10 kept it at the top level
            from testcontainers.kafka import KafkaContainer
        with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
            yield str(container.get_bootstrap_server())
        return
    data_dir = Path(tempfile.mkdtemp(prefix="aviso-test-kafka-"))
    try:
        yield local_kafka.start(port=0, data_dir=data_dir)
    finally:
        local_kafka.stop(data_dir=data_dir, timeout=15.0)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """Yield a ``postgresql+asyncpg://`` URL of a real PostgreSQL server for the block."""
    external = os.environ.get("DATABASE_URL", "").strip()
    if external:
        yield external
        return
    if docker_available():
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # testcontainers < 4.10 kept it at the top level
            from testcontainers.postgres import PostgresContainer
        with PostgresContainer(POSTGRES_IMAGE, driver="asyncpg") as container:
            yield str(container.get_connection_url(driver="asyncpg"))
        return
    # /tmp rather than the checkout: the postgres user must be able to reach it.
    data_dir = Path(tempfile.mkdtemp(prefix="aviso-test-postgres-"))
    try:
        yield local_postgres.start(port=0, data_dir=data_dir, fast=True)
    finally:
        local_postgres.stop(data_dir=data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def asyncpg_dsn(url: str, *, database: str | None = None) -> str:
    """Turn a SQLAlchemy URL (``postgresql+asyncpg://``) into a plain asyncpg DSN."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def fresh_database_async(url: str, *, prefix: str = "aviso_test") -> str:
    """Create a uniquely named empty database on url's server and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(asyncpg_dsn(url, database="postgres"), timeout=15)
    try:
        await connection.execute(f"CREATE DATABASE {_quote_identifier(name)}")
    finally:
        await connection.close()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def drop_database_async(url: str) -> None:
    """Drop the database url names, disconnecting anyone still using it."""
    name = make_url(url).database
    if not name or name in {"postgres", "template0", "template1"}:
        raise ValueError(f"refusing to drop {name!r}")
    connection = await asyncpg.connect(asyncpg_dsn(url, database="postgres"), timeout=15)
    try:
        # WITH (FORCE) (PostgreSQL 13+): a leaked pool connection must not fail teardown.
        await connection.execute(f"DROP DATABASE IF EXISTS {_quote_identifier(name)} WITH (FORCE)")
    finally:
        await connection.close()


def fresh_database(url: str, *, prefix: str = "aviso_test") -> str:
    """Synchronous :func:`fresh_database_async` (usable inside a running loop too)."""
    return run_sync(lambda: fresh_database_async(url, prefix=prefix))


def drop_database(url: str) -> None:
    """Synchronous :func:`drop_database_async` (usable inside a running loop too)."""
    run_sync(lambda: drop_database_async(url))
