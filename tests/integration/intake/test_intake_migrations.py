"""Intake's migrations build exactly the tables its metadata describes, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.common.db import make_engine
from services.common.migrations import target_metadata, upgrade
from services.common.settings import CommonSettings

pytestmark = pytest.mark.postgres


async def test_migrated_schema_matches_the_metadata(
    database_url: str | None, make_settings: Callable[..., CommonSettings]
) -> None:
    settings = make_settings(database_url=database_url)
    await upgrade(settings, "intake")
    engine = make_engine(settings, "intake")

    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        # A list of metadata works at runtime (as in env.py); the stubs name one MetaData.
        return list(compare_metadata(context, target_metadata("intake")))  # type: ignore[arg-type]

    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
            head = (
                await conn.exec_driver_sql("SELECT seq, entry_hash FROM audit_chain_head")
            ).all()
    finally:
        await engine.dispose()
    assert differences == []
    assert [tuple(row) for row in head] == [(0, "0" * 64)]
