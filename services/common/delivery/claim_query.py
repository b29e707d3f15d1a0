"""The parts of a claim statement that keep it cheap: a per-destination cap and a re-check
by id (used by `store.SqlDeliveryStore.claim`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

__all__ = ["SCAN_FACTOR", "capped", "unindexed"]


def unindexed(condition: Any) -> Any:
    """`condition` in a form no planner picks an index for: a claim's re-check must be
    applied to the few rows picked by id, not drive the statement (SQLite otherwise walked
    every due record of the due index, 25 ms a claim with 10,000 due)."""
    return sa.case((condition, sa.true()), else_=sa.false())


# How many due records a capped claim looks at per record it may take: enough that a
# burst to one destination does not hide the records of others behind it.
SCAN_FACTOR = 4


def capped(scanned: Any, limit: int, room: Mapping[str, int], default_room: int | None) -> Any:
    """The ids of `scanned` (oldest due first) to take: at most `room` per destination."""
    if default_room is None and not room:
        return sa.select(scanned.c.delivery_id).scalar_subquery()
    nth = (
        sa.func.row_number()
        .over(
            partition_by=scanned.c.destination_key,
            order_by=(scanned.c.next_attempt_at, scanned.c.delivery_id),
        )
        .label("nth")
    )
    ranked = sa.select(scanned.c.delivery_id, scanned.c.destination_key,
                       scanned.c.next_attempt_at, nth).subquery("ranked")  # fmt: skip
    fallback = sa.literal(default_room if default_room is not None else limit)
    cap = sa.case(dict(room), value=ranked.c.destination_key, else_=fallback) if room else fallback
    return (
        sa.select(ranked.c.delivery_id)
        .where(sa.or_(ranked.c.destination_key.is_(None), ranked.c.nth <= cap))
        .order_by(ranked.c.next_attempt_at)
        .limit(limit)
        .scalar_subquery()
    )
