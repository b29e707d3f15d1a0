"""Migrations upgrade every component from empty, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from services.common.db import COMPONENTS, is_postgres, make_engine
from services.common.migrations import target_metadata, upgrade_all
from services.common.settings import CommonSettings

pytestmark = pytest.mark.postgres


async def test_upgrade_from_empty_creates_every_table_in_its_own_schema(
    database_url: str | None, make_settings: Callable[..., CommonSettings]
) -> None:
    settings = make_settings(database_url=database_url)
    await upgrade_all(settings)
    await upgrade_all(settings)  # a second run is a no-op, not an error

    for component in COMPONENTS:
        engine = make_engine(settings, component)
        try:
            async with engine.connect() as conn:
                tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
                if is_postgres(engine):
                    schema = (await conn.execute(sa.text("SELECT current_schema()"))).scalar_one()
                    assert schema == component
                version = (
                    await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                ).scalar_one()
        finally:
            await engine.dispose()
        expected = {t.name for md in target_metadata(component) for t in md.sorted_tables}
        assert expected <= tables, f"{component} lacks {expected - tables}"
        assert version.startswith(component)
