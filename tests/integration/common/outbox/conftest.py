"""Fixtures of the outbox relay's integration tests: intake's schema, a broker, an engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import make_engine
from services.common.kafka import make_broker
from services.common.migrations import upgrade
from services.common.settings import CommonSettings


@pytest.fixture
async def settings(
    database_url: str | None, kafka_bootstrap: str, make_settings: Callable[..., CommonSettings]
) -> CommonSettings:
    """Settings for the test's database (intake's schema, which holds an outbox) and broker."""
    built = make_settings(database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap)
    await upgrade(built, "intake")
    return built


@pytest.fixture
async def engine(settings: CommonSettings) -> AsyncIterator[AsyncEngine]:
    made = make_engine(settings, "intake")
    yield made
    await made.dispose()


@pytest.fixture
async def broker(settings: CommonSettings) -> AsyncIterator[KafkaBroker]:
    made = make_broker(settings, service="test")
    await made.connect()
    yield made
    await made.stop()
