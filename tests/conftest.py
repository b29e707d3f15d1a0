"""Fixtures shared by every test layer.

Integration and end-to-end tests run against a real Kafka broker and a real
PostgreSQL server (see tests/support/infra.py for where they come from). When
`AVISO_REQUIRE_INFRA=1` (CI), failing to obtain either is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from services.common.settings import CommonSettings
from tests.support import infra
from tests.support.devmode import enable_development_mode

enable_development_mode()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test runs on uvloop, the event loop the services run on (serve.py)."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a real Kafka broker."""
    try:
        manager = infra.kafka_bootstrap()
        address = manager.__enter__()
    except Exception as exc:
        infra.infra_unavailable("Kafka", exc)
        raise
    try:
        yield address
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL (postgresql+asyncpg://) of a real PostgreSQL server."""
    try:
        manager = infra.postgres_url()
        address = manager.__enter__()
    except Exception as exc:
        infra.infra_unavailable("PostgreSQL", exc)
        raise
    try:
        yield address
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture
async def pg_database(postgres_url: str) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    url = await infra.fresh_database_async(postgres_url)
    try:
        yield url
    finally:
        await infra.drop_database_async(url)


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str | None]:
    """Both back ends: None (embedded SQLite under tmp_path) and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_url")
    url = await infra.fresh_database_async(server)
    try:
        yield url
    finally:
        await infra.drop_database_async(url)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Any]:
    """Build settings of any service class pointed at tmp_path and the given infrastructure."""

    def build(cls: type[CommonSettings] = CommonSettings, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "var_dir": tmp_path / "var",
            "database_url": None,
            "consumer_backoff_s": 0.05,
            "outbox_poll_interval_s": 0.5,
            "shutdown_grace_s": 10.0,
            "log_format": "json",
        }
        values.update(overrides)
        return cls(**values)

    return build


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique names for topics, groups and canaries, so tests never see each other's data."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make
