"""The delivery-records revision carries recorded outcomes over, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from services.common.db import make_engine
from services.common.migrations import upgrade
from services.rumor_control.config import RumorControlSettings

pytestmark = pytest.mark.postgres


async def test_outcomes_recorded_before_the_engine_become_finished_records(
    database_url: str | None, make_settings: Callable[..., RumorControlSettings]
) -> None:
    settings = make_settings(RumorControlSettings, database_url=database_url)
    await upgrade(settings, "rumor_control", "rumor_control_0002")
    engine = make_engine(settings, "rumor_control")
    bulletin = str(uuid.uuid4())
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    old = sa.table(
        "deliveries",
        *(sa.column(c) for c in ("delivery_id", "bulletin_id", "version", "recipient_id")),
        *(sa.column(c) for c in ("channel", "language", "purpose", "outcome", "attempted_at")),
    )
    rows = [
        {"delivery_id": str(uuid.uuid4()), "bulletin_id": bulletin, "version": 1,
         "recipient_id": str(uuid.uuid4()), "channel": "webhook", "language": "es",
         "purpose": "bulletin", "outcome": outcome, "attempted_at": at}
        for outcome in ("sent", "failed", "skipped")
    ]  # fmt: skip
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.insert(old), rows)
        await upgrade(settings, "rumor_control")
        async with engine.connect() as connection:
            found = (
                await connection.execute(
                    sa.text(
                        "SELECT delivery_id, state, attempts, delivered_at, context "
                        "FROM delivery_records WHERE aggregate_id = :b"
                    ),
                    {"b": bulletin},
                )
            ).all()
            tables = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
    finally:
        await engine.dispose()
    by_id = {row.delivery_id: row for row in found}
    assert [(by_id[r["delivery_id"]].state, by_id[r["delivery_id"]].attempts) for r in rows] == [
        ("delivered", 1),
        ("failed", 1),
        ("skipped", 0),
    ]
    assert by_id[rows[0]["delivery_id"]].delivered_at is not None
    assert by_id[rows[1]["delivery_id"]].delivered_at is None
    assert "deliveries" not in tables
