"""rumor_control's migrations create exactly the tables its code uses, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.common.db import make_engine
from services.common.migrations import target_metadata, upgrade
from services.rumor_control.config import RumorControlSettings

pytestmark = pytest.mark.postgres


async def test_migrations_match_the_tables_on_sqlite_and_postgresql(
    database_url: str | None, make_settings: Callable[..., RumorControlSettings]
) -> None:
    settings = make_settings(RumorControlSettings, database_url=database_url)
    await upgrade(settings, "rumor_control")
    engine = make_engine(settings, "rumor_control")

    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, target_metadata("rumor_control")))

    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == [], diff
