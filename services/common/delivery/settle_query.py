"""The statements that settle claimed records (used by `store.SqlDeliveryStore`): the
settling UPDATE executed for many rows, and the one that shares a destination just
learned with the recipient's other pending records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from services.common.delivery.store import Settlement

__all__ = ["settle_params", "settle_statement", "share_statement"]


def settle_params(settlement: Settlement) -> dict[str, Any]:
    """One row's parameters for the settling UPDATE (NULL keeps the column as it is)."""
    return {
        "b_id": str(settlement.delivery_id),
        "b_state": settlement.state,
        "b_at": settlement.at,
        "b_attempted": 1 if settlement.attempted else 0,
        "b_next": settlement.next_attempt_at,
        "b_error": settlement.error_class,
        "b_key": settlement.destination_key,
        "b_delivered": settlement.at if settlement.state == "delivered" else None,
        "b_segments": settlement.segments,
    }


def settle_statement(t: sa.Table, owner: str) -> Any:
    """The settling UPDATE, executed once for many rows (`settle_params` gives each its values)."""

    def keep(column: str, param: str, type_: Any) -> Any:
        return sa.func.coalesce(sa.bindparam(param, type_=type_), t.c[column])

    time_type = t.c.updated_at.type
    values: dict[str, Any] = {
        "state": sa.bindparam("b_state", type_=sa.String),
        "updated_at": sa.bindparam("b_at", type_=time_type),
        "claimed_by": None,
        "claimed_until": None,
        "attempts": t.c.attempts + sa.bindparam("b_attempted", type_=sa.Integer),
        "next_attempt_at": keep("next_attempt_at", "b_next", time_type),
        "last_error_class": keep("last_error_class", "b_error", sa.String),
        "destination_key": keep("destination_key", "b_key", sa.String),
        "delivered_at": keep("delivered_at", "b_delivered", time_type),
    }
    if "segments" in t.c:
        values["segments"] = keep("segments", "b_segments", sa.Integer)
    return (
        sa.update(t)
        .where(
            t.c.delivery_id == sa.bindparam("b_id", type_=sa.String),
            t.c.claimed_by == owner,
            t.c.state == "sending",
        )
        .values(**values)
    )


def share_statement(t: sa.Table, other: Any) -> Any:
    """Set `destination_key` (`s_key`) on the pending records of a recipient and channel
    (`s_recipient`, `s_channel`) whose destination is not known yet; `other` is an alias
    of `t`. Rows another transaction holds are skipped, never waited for."""
    unknown = (
        sa.select(other.c.delivery_id)
        .where(
            other.c.state == "pending",
            other.c.destination_key.is_(None),
            other.c.recipient_id == sa.bindparam("s_recipient"),
            other.c.channel == sa.bindparam("s_channel"),
        )
        .with_for_update(skip_locked=True, of=other)
        .scalar_subquery()
    )
    return (
        sa.update(t)
        .where(t.c.delivery_id.in_(unknown), t.c.destination_key.is_(None))
        .values(destination_key=sa.bindparam("s_key"))
    )
