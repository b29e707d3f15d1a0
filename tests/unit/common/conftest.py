"""Fixtures shared by the common package's unit tests."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import services.common.logging.setup as log_setup
from services.common.kafka import EventConsumer
from services.common.logging import configure_logging
from tests.unit.common.inbox_harness import consumer_on_sqlite


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Every JSON line the process logs during the test, in one buffer."""
    buffer = io.StringIO()
    configure_logging("test-svc", fmt="json", stream=buffer, force=True)
    try:
        yield buffer
    finally:
        configure_logging("aviso-tests", force=True)
        log_setup._state.configured = False


@pytest.fixture
async def sqlite_consumer(tmp_path: Path) -> AsyncIterator[tuple[EventConsumer, Any]]:
    """A consumer whose inbox is a fresh SQLite file, and its session factory."""
    async with consumer_on_sqlite(tmp_path) as pair:
        yield pair
