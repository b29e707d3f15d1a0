"""The statement that accepts orders (used by `store.SqlDeliveryStore.insert_many`): built
once per store and dialect, and the row each order becomes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from services.common.delivery.records import DeliveryOrder

__all__ = ["PENDING_COLUMNS", "insert_statement", "pending_row"]

# The columns of `pending_row`, in its order (PostgreSQL inserts them as one array each).
PENDING_COLUMNS = (
    "delivery_id", "aggregate_id", "aggregate_version", "recipient_id", "channel", "purpose",
    "language", "context", "correlation_id", "state", "claimed_by", "claimed_until",
    "attempts", "next_attempt_at", "give_up_at", "created_at", "updated_at",
)  # fmt: skip


def insert_statement(t: sa.Table, dialect: str) -> Any:
    """`INSERT ... ON CONFLICT DO NOTHING RETURNING delivery_id` for `dialect`: a known
    delivery id is left as it is, and RETURNING names the rows that were new."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        insert: Any = pg_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        insert = sqlite_insert
    else:  # pragma: no cover - only the two back ends exist
        raise RuntimeError(f"unsupported database {dialect}")
    statement = insert(t).on_conflict_do_nothing(index_elements=["delivery_id"])
    return statement.returning(t.c.delivery_id)


def pending_row(
    order: DeliveryOrder,
    give_up_at: datetime,
    claimed_until: datetime | None,
    *,
    now: datetime,
    owner: str | None,
) -> dict[str, Any]:
    """The row of an accepted order: pending, or (a hand-off: `claimed_until` and `owner`)
    sending under `owner`'s lease, exactly as a claim leaves a record."""
    handed = claimed_until is not None and owner is not None
    return {
        "delivery_id": str(order.delivery_id),
        "aggregate_id": str(order.aggregate_id),
        "aggregate_version": order.aggregate_version,
        "recipient_id": str(order.recipient_id),
        "channel": order.channel,
        "purpose": order.purpose,
        "language": order.language,
        "context": dict(order.context),
        "correlation_id": order.correlation_id,
        "state": "sending" if handed else "pending",
        "claimed_by": owner if handed else None,
        "claimed_until": claimed_until if handed else None,
        "attempts": 0,
        "next_attempt_at": order.not_before or now,
        "give_up_at": give_up_at,
        "created_at": now,
        "updated_at": now,
    }
