"""The delivery records' later revisions (SMS segments, reports) in router and rumor_control."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from services.common.db import make_engine
from services.common.migrations import alembic_config, upgrade
from services.common.settings import CommonSettings

pytestmark = pytest.mark.postgres


def _columns(connection: Connection) -> set[str]:
    return {c["name"] for c in sa.inspect(connection).get_columns("delivery_records")}


def _downgrade(connection: Connection, component: str, revision: str) -> None:
    config = alembic_config(component)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


@pytest.mark.parametrize("component", ["router", "rumor_control"])
async def test_segments_come_with_revision_0004_and_go_with_its_downgrade(
    component: str, database_url: str | None, make_settings: Callable[..., CommonSettings]
) -> None:
    settings = make_settings(database_url=database_url)
    await upgrade(settings, component, f"{component}_0003")
    engine = make_engine(settings, component)
    try:
        async with engine.connect() as conn:
            assert "segments" not in await conn.run_sync(_columns)  # version 1, as frozen
        await upgrade(settings, component)
        async with engine.connect() as conn:
            assert "segments" in await conn.run_sync(_columns)
            await conn.run_sync(_downgrade, component, f"{component}_0003")
            await conn.commit()
            columns: Any = await conn.run_sync(_columns)
        assert "segments" not in columns
        assert {"delivery_id", "state", "claimed_until"} <= columns
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("component", "before"), [("router", "router_0004"), ("rumor_control", "rumor_control_0005")]
)
async def test_report_columns_come_with_version_3_and_go_with_its_downgrade(
    component: str,
    before: str,
    database_url: str | None,
    make_settings: Callable[..., CommonSettings],
) -> None:
    settings = make_settings(database_url=database_url)
    await upgrade(settings, component, before)
    engine = make_engine(settings, component)
    try:
        async with engine.connect() as conn:
            assert "report" not in await conn.run_sync(_columns)
        await upgrade(settings, component)
        async with engine.connect() as conn:
            assert {"report", "reported_at", "segments"} <= await conn.run_sync(_columns)
            await conn.run_sync(_downgrade, component, before)
            await conn.commit()
            columns: Any = await conn.run_sync(_columns)
        assert not {"report", "reported_at"} & columns
        assert "segments" in columns
    finally:
        await engine.dispose()
