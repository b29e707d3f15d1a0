"""Intake running for real in-process: lifespan entered, real Kafka, real database.

`intake` runs the app on both back ends (the `database_url` fixture: SQLite under
tmp_path and a fresh PostgreSQL database) with a token for every principal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from services.intake.config import IntakeSettings
from tests.integration.intake.intake_support import KEY_K1, Intake, run_intake


@pytest.fixture
def intake_settings(
    database_url: str | None, kafka_bootstrap: str, make_settings: Callable[..., Any]
) -> Callable[..., IntakeSettings]:
    """Build intake settings on this test's database and the real broker."""

    def build(**overrides: Any) -> IntakeSettings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "kafka_bootstrap_servers": kafka_bootstrap,
            "intake_encryption_keys": SecretStr(f"k1:{KEY_K1}"),
            "intake_sweep_interval_s": 3600.0,
        }
        values.update(overrides)
        settings: IntakeSettings = make_settings(IntakeSettings, **values)
        return settings

    return build


@pytest.fixture
async def intake(intake_settings: Callable[..., IntakeSettings]) -> AsyncIterator[Intake]:
    """Intake running on this test's database with a token for every principal."""
    async with run_intake(intake_settings()) as harness:
        yield harness
