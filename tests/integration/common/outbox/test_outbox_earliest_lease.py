"""The settling's earliest lease looks at the oldest unsent rows only, so a backlog does
not slow every settling (PostgreSQL: the plan's own row counts, no timing), and still
finds the lease of a relay that died holding the oldest rows."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.direct import DirectStatement
from services.common.messaging import outbox_messages
from services.common.outbox.statements import RelayStatements

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

# A backlog of intake-sized rows (3 kB of payload each, in TOAST): what a relay behind
# settles against. (A few tiny rows fit a page or two, where reading them all is the
# cheaper plan.)
WAITING = 2000
PAYLOAD = json.dumps({"fingerprints": secrets.token_hex(1500)})


def _row(n: int, claimed_by: str, claimed_until: datetime) -> dict[str, Any]:
    return {
        "message_id": f"m-{n}",
        "topic": "aviso.notices.v1",
        "key": f"k-{n}",
        "event_type": "notice.updated",
        "headers": {},
        "payload": PAYLOAD,
        "created_at": datetime.now(UTC),
        "claimed_by": claimed_by,
        "claimed_until": claimed_until,
    }


def _rows_read_for_the_lease(plan: Any) -> int:
    """Rows the plan's scans of the `other` alias returned (the earliest lease's look)."""
    found = 0
    stack = [plan]
    while stack:
        node = stack.pop()
        if node.get("Alias") == "other":
            found += int(node["Actual Rows"]) * int(node.get("Actual Loops", 1))
        stack.extend(node.get("Plans", ()))
    return found


async def test_the_settling_reads_the_oldest_rows_for_the_earliest_lease(
    engine: AsyncEngine,
) -> None:
    now = datetime.now(UTC)
    # A dead relay's rows first (the earliest lease), then a backlog others hold longer.
    # Ten minutes apart: which lease the settling names does not depend on how long the
    # set-up below takes on a loaded machine.
    rows = [_row(0, "dead", now + timedelta(seconds=60))]
    rows += [_row(n, "busy", now + timedelta(seconds=660)) for n in range(1, WAITING)]
    rows.append(_row(WAITING, "me", now + timedelta(seconds=660)))
    async with engine.begin() as conn:
        await conn.execute(sa.insert(outbox_messages), rows)
        await conn.execute(sa.text("ANALYZE outbox_messages"))  # as autovacuum would
        mine = (
            await conn.execute(
                sa.select(outbox_messages.c.id).where(outbox_messages.c.claimed_by == "me")
            )
        ).scalar_one()
    statements = RelayStatements(
        postgres=True, relay_id="me", batch_size=100, claim_ttl_s=2.0, retry_delay_s=1.0
    )
    # The settling as the relay sends it (straight to asyncpg), under EXPLAIN ANALYZE.
    compiled = DirectStatement(lambda: statements.delete_sent).compiled(engine.dialect)
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        # EXPLAIN ANALYZE runs the DELETE: rolled back, the row stays for the check below.
        transaction = driver.transaction()
        await transaction.start()
        try:
            explained = await driver.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled.sql}",
                *compiled.arguments({"ids": [mine]}),
            )
        finally:
            await transaction.rollback()
    plan = (explained if isinstance(explained, list) else json.loads(explained))[0]["Plan"]
    assert 1 <= _rows_read_for_the_lease(plan) <= 64

    # And the settling still says when the dead relay's lease ends.
    async with engine.connect() as conn:
        ends = (await conn.execute(statements.delete_sent, {"ids": [mine]})).scalar()
        await conn.commit()
    assert ends is not None
    assert 0 < float(ends) <= 60  # the dead relay's, not the backlog's (~660 s)
