"""Fixtures shared by the common package's unit tests."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

import services.common.logging.setup as log_setup
from services.common.logging import configure_logging


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
