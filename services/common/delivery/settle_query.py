"""The statements that settle claimed records (used by `store.SqlDeliveryStore`): the
settling UPDATE executed for many rows (and, on PostgreSQL, one statement that locks and
settles a whole batch), and the one that shares a destination just learned with the
recipient's other pending records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.common.delivery.records import state_is

if TYPE_CHECKING:
    from services.common.delivery.store import Settlement
    from services.common.direct import DirectStatement

__all__ = [
    "SettleCarry",
    "SettleRead",
    "settle_arrays",
    "settle_batch_statement",
    "settle_ctes",
    "settle_params",
    "settle_statement",
    "share_batch_statement",
    "share_statement",
]

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class SettleRead:
    """A plan's read carried by the settling statement (PostgreSQL only).

    Why: a plan whose `on_outcomes` first reads the batch's aggregates paid one round
    trip for that read right after the settling statement, in the same transaction.
    The engine keeps the deliveries table's knowledge; the plan gives only its SELECT
    (`sql`, bound only to `:read_ids`, a VARCHAR[] of aggregate ids). The store leaves
    `(ids read, rows)` in the session's `info` under `key` for the plan's hook to take;
    where nothing is left there (SQLite, a failed statement) the plan reads as before.
    """

    sql: str
    key: str
    ids: tuple[str, ...] = ()
    # False: a final failure's aggregate is not read for it (the plan's hook for a final
    # failure reads it itself, locked); read only if another outcome names it.
    finals: bool = True


@dataclass(frozen=True)
class SettleCarry:
    """A plan's writes for an outcome batch, carried by the settling statement and sent
    alone, without BEGIN (PostgreSQL only; `DeliveryPlan.carry_settled`).

    Why: a delivered outcome's round was BEGIN, the settle (with the plan's read), the
    plan's change, COMMIT. With the read done first (it needs no transaction: the
    change is guarded in SQL as it was), the settle and the change are one statement,
    which PostgreSQL commits by itself: two round trips where there were four.

    `statement` starts `WITH <settle_ctes(table)>, ...` and returns one row whose
    `settled_ids` is the array of ids written; every write of the plan's is conditioned
    on its record's id being in `settled`, so a record whose lease was lost writes
    nothing. `values` are the plan's own parameters. `finish(row, held)` runs once the
    statement answered, with the ids it settled: the plan registers its after-commit
    effects (log lines, the outbox hand-over) for those records only.
    """

    statement: DirectStatement
    values: Mapping[str, Any]
    finish: Callable[[Any, frozenset[str]], None]


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
            state_is(other.c.state, "pending"),
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


# The batch statement's arrays: (parameter, column of `settle_params`, column type source).
_ARRAYS = (
    ("ids", "b_id", "delivery_id"),
    ("states", "b_state", "state"),
    ("ats", "b_at", "updated_at"),
    ("attempted", "b_attempted", None),
    ("nexts", "b_next", "next_attempt_at"),
    ("errors", "b_error", "last_error_class"),
    ("keys", "b_key", "destination_key"),
    ("delivered", "b_delivered", "delivered_at"),
    ("segments", "b_segments", "segments"),
)


def settle_arrays(rows: list[dict[str, Any]], owner: str) -> dict[str, Any]:
    """The batch statement's parameters: one array per column of `settle_params` rows."""
    arrays: dict[str, Any] = {name: [row[key] for row in rows] for name, key, _ in _ARRAYS}
    arrays["owner"] = owner
    return arrays


def settle_ctes(t: sa.Table) -> tuple[str, list[sa.BindParameter[Any]]]:
    """The settling statement's two CTEs as text to follow WITH: `locked` (the batch's
    rows still ours, locked in delivery-id order) and `settled` (their new state,
    RETURNING `delivery_id`: the ids written), and their bind parameters (the arrays of
    `settle_arrays` and `:owner`). A caller that carries writes of its own in the same
    statement conditions each on its record's id being in `settled`."""
    locked, update, binds = _settle_parts(t)
    return f"{locked}, settled AS ({update})", binds


def _settle_parts(t: sa.Table) -> tuple[str, str, list[sa.BindParameter[Any]]]:
    """The `locked` CTE, the settling UPDATE and their bind parameters."""

    def array_type(column: str | None) -> Any:
        return postgresql.ARRAY(sa.Integer if column is None else t.c[column].type)

    arrays = [(name, array_type(column)) for name, _, column in _ARRAYS]
    if "segments" not in t.c:  # a table before version 2
        arrays = [(name, kind) for name, kind in arrays if name != "segments"]
    casts = ", ".join(f"CAST(:{name} AS {kind.compile(dialect=_PG)})" for name, kind in arrays)
    names = ", ".join(name for name, _ in arrays)
    segments = ", segments = coalesce(v.segments, d.segments)" if "segments" in t.c else ""
    table = _PG.identifier_preparer.quote(t.name)
    # Identifiers come from the table's metadata, quoted by the dialect; values are bound.
    update = (
        f"UPDATE {table} AS d SET state = v.states, updated_at = v.ats, "  # noqa: S608
        "claimed_by = NULL, claimed_until = NULL, attempts = d.attempts + v.attempted, "
        "next_attempt_at = coalesce(v.nexts, d.next_attempt_at), "
        "last_error_class = coalesce(v.errors, d.last_error_class), "
        "destination_key = coalesce(v.keys, d.destination_key), "
        f"delivered_at = coalesce(v.delivered, d.delivered_at){segments} "
        f"FROM unnest({casts}) AS v({names}) "
        "JOIN locked ON locked.delivery_id = v.ids WHERE d.delivery_id = v.ids "
        "RETURNING d.delivery_id"
    )
    # The state test in a form no index answers: the ids drive (primary key probes).
    # Planned for an array it has not seen (a generic plan: ten elements assumed),
    # PostgreSQL otherwise ANDed in the due index's every 'sending' entry: 0.4 ms
    # instead of 0.03 with 1,200 records in flight, in a dev-cluster check.
    locked = (
        f"locked AS MATERIALIZED (SELECT delivery_id FROM {table} "  # noqa: S608
        "WHERE delivery_id = ANY(CAST(:ids AS VARCHAR[])) AND claimed_by = :owner "
        "AND CASE WHEN state = 'sending' THEN true ELSE false END "
        "ORDER BY delivery_id FOR UPDATE)"
    )
    binds = [sa.bindparam(name, type_=kind) for name, kind in arrays]
    binds.append(sa.bindparam("owner", type_=sa.String))
    return locked, update, binds


def settle_batch_statement(t: sa.Table, read: str | None = None) -> sa.TextClause:
    """PostgreSQL: lock the batch's rows that are still ours (in delivery-id order, the
    order every batch takes them in, so two batches never wait on each other) and write
    each its outcome, in ONE statement built once: the rows go as one array per column
    (`settle_arrays`), so the text never changes with the batch size. Returns the ids
    written (the others were taken over: not ours to record).

    `read` (a caller's SELECT bound only to `:read_ids`, see `SettleRead`) rides along:
    then the statement returns one row per row it read (at least one, all NULL when it
    read none), each with `settled_ids`, the array of ids written."""
    locked, update, binds = _settle_parts(t)
    if read is None:
        sql = f"WITH {locked} {update}"
    else:
        # The read sees the statement's snapshot: what a next statement of the same
        # READ COMMITTED transaction would have read, a round trip earlier.
        sql = (
            f"WITH {locked}, settled AS ({update}) "  # noqa: S608
            "SELECT (SELECT array_agg(delivery_id) FROM settled) AS settled_ids, r.* "
            f"FROM (SELECT 1) AS one LEFT JOIN LATERAL ({read}) AS r ON true"
        )
        binds.append(sa.bindparam("read_ids", type_=postgresql.ARRAY(sa.String)))
    return sa.text(sql).bindparams(*binds)


def share_batch_statement(t: sa.Table) -> sa.TextClause:
    """PostgreSQL: `share_statement` for many (recipient, channel, key) at once, as three
    arrays (`recipients`, `channels`, `keys`) in ONE text. A pair named twice keeps the
    first key in sort order, as the executemany it replaces left it (the second then
    found the key set)."""
    table = _PG.identifier_preparer.quote(t.name)
    # Identifiers come from the table's metadata, quoted by the dialect; values are bound.
    sql = (
        "WITH v AS (SELECT DISTINCT ON (recipient, channel) recipient, channel, key "  # noqa: S608
        "FROM unnest(CAST(:recipients AS VARCHAR[]), CAST(:channels AS VARCHAR[]), "
        "CAST(:keys AS VARCHAR[])) AS u(recipient, channel, key) "
        "ORDER BY recipient, channel, key), "
        "unknown AS (SELECT o.delivery_id, v.key "
        f"FROM {table} AS o JOIN v ON o.recipient_id = v.recipient AND o.channel = v.channel "
        "WHERE o.state = 'pending' AND o.destination_key IS NULL FOR UPDATE OF o SKIP LOCKED) "
        f"UPDATE {table} AS d SET destination_key = unknown.key FROM unknown "
        "WHERE d.delivery_id = unknown.delivery_id AND d.destination_key IS NULL"
    )
    array = postgresql.ARRAY(sa.String)
    return sa.text(sql).bindparams(
        *(sa.bindparam(name, type_=array) for name in ("recipients", "channels", "keys"))
    )
