"""The parts of a claim statement that keep it cheap: a per-destination cap and a re-check
by id (used by `store.SqlDeliveryStore.claim`); on PostgreSQL the whole claim as one text
built once (`claim_statement`, sent straight to asyncpg by direct_rounds.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.common.delivery.records import state_is

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]

__all__ = [
    "SCAN_FACTOR",
    "ClaimAsk",
    "capped",
    "claim_arguments",
    "claim_statement",
    "claim_update",
    "unindexed",
]


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


def claim_statement(t: sa.Table, *, lapsed: bool) -> sa.TextClause:
    """PostgreSQL: one claim of `lapsed` records (a claimant stopped renewing) or of pending
    ones that are due, as the SQLAlchemy path builds it, in ONE text for every call: the
    destinations left out (`excluded`) and the room per destination (`room_keys`,
    `room_caps`; `default_cap` elsewhere, none when NULL) go as arrays, so asyncpg
    prepares it once. Takes at most `want` of the `scan` oldest due, locked (SKIP LOCKED),
    and re-checks the due condition on the rows it updates (`unindexed`)."""
    table = _PG.identifier_preparer.quote(t.name)
    time = "CAST(:now AS TIMESTAMP WITH TIME ZONE)"
    due = (
        f"c.state = 'sending' AND c.claimed_until < {time}"
        if lapsed
        else f"c.state = 'pending' AND c.next_attempt_at <= {time}"
    )
    # Identifiers come from the table's metadata, quoted by the dialect; values are bound.
    sql = (
        f"WITH scanned AS (SELECT c.delivery_id, c.destination_key, c.next_attempt_at "  # noqa: S608
        f"FROM {table} AS c WHERE {due} AND (c.destination_key IS NULL OR "
        "c.destination_key <> ALL(CAST(:excluded AS VARCHAR[]))) "
        "ORDER BY c.next_attempt_at LIMIT :scan FOR UPDATE OF c SKIP LOCKED), "
        "ranked AS (SELECT s.*, row_number() OVER (PARTITION BY s.destination_key "
        "ORDER BY s.next_attempt_at, s.delivery_id) AS nth FROM scanned AS s), "
        "picked AS (SELECT r.delivery_id FROM ranked AS r LEFT JOIN "
        "unnest(CAST(:room_keys AS VARCHAR[]), CAST(:room_caps AS INTEGER[])) AS room(key, cap) "
        "ON room.key = r.destination_key WHERE r.destination_key IS NULL "
        "OR r.nth <= coalesce(room.cap, :default_cap, :want) "
        "ORDER BY r.next_attempt_at LIMIT :want) "
        f"UPDATE {table} SET state = 'sending', claimed_by = :owner, "
        f"claimed_until = CAST(:lease_until AS TIMESTAMP WITH TIME ZONE), updated_at = {time} "
        f"WHERE delivery_id IN (SELECT delivery_id FROM picked) AND CASE WHEN "
        # The due condition again: PostgreSQL re-checks it on a row another claimant
        # changed meanwhile, so a row is never taken twice (either kind of due record).
        f"(state = 'pending' AND next_attempt_at <= {time}) OR (state = 'sending' "
        f"AND claimed_until < {time}) THEN true ELSE false END RETURNING *"
    )
    return sa.text(sql).bindparams(
        sa.bindparam("now", type_=t.c.updated_at.type),
        sa.bindparam("lease_until", type_=t.c.updated_at.type),
        sa.bindparam("owner", type_=sa.String),
        sa.bindparam("scan", type_=sa.Integer),
        sa.bindparam("want", type_=sa.Integer),
        sa.bindparam("default_cap", type_=sa.Integer),
        sa.bindparam("excluded", type_=postgresql.ARRAY(sa.String)),
        sa.bindparam("room_keys", type_=postgresql.ARRAY(sa.String)),
        sa.bindparam("room_caps", type_=postgresql.ARRAY(sa.Integer)),
    )


@dataclass(frozen=True)
class ClaimAsk:
    """One claim statement's question: up to `want` of the `scan` oldest due records of one
    kind (`lapsed` claims, or pending), at most `room[key]` (else `default_room`; no cap
    when None) per known destination, none of destinations `excluded`."""

    lapsed: bool
    now: datetime
    owner: str
    lease_until: datetime
    want: int
    scan: int
    excluded: Sequence[str]
    room: Mapping[str, int]
    default_room: int | None


def _due(table: Any, now: datetime) -> Any:
    return sa.or_(
        sa.and_(state_is(table.c.state, "pending"), table.c.next_attempt_at <= now),
        # A claimant that stopped renewing (crashed) loses the record.
        sa.and_(state_is(table.c.state, "sending"), table.c.claimed_until < now),
    )


def claim_update(t: sa.Table, candidate: Any, ask: ClaimAsk) -> Any:
    """The claim as a SQLAlchemy statement (SQLite; `candidate` an alias of `t`)."""
    now = ask.now
    if ask.lapsed:
        due = sa.and_(state_is(candidate.c.state, "sending"), candidate.c.claimed_until < now)
    else:
        due = sa.and_(state_is(candidate.c.state, "pending"), candidate.c.next_attempt_at <= now)
    excluded: list[Any] = []
    if ask.excluded:
        # Destinations this process is not sending to now (saturated, breaker open):
        # leave their records for later or for another process.
        excluded.append(
            sa.or_(
                candidate.c.destination_key.is_(None),
                candidate.c.destination_key.not_in(list(ask.excluded)),
            )
        )
    scanned = (
        sa.select(candidate.c.delivery_id, candidate.c.destination_key,
                  candidate.c.next_attempt_at)
        .where(due, *excluded)
        .order_by(candidate.c.next_attempt_at)
        .limit(ask.scan)
        .with_for_update(skip_locked=True, of=candidate)
    )  # fmt: skip
    picked = capped(scanned.subquery("scanned"), ask.want, ask.room, ask.default_room)
    return (
        sa.update(t)
        # The due condition again: PostgreSQL re-checks it on a row another
        # claimant changed meanwhile, so a row is never taken twice.
        .where(t.c.delivery_id.in_(picked), unindexed(_due(t, now)))
        .values(state="sending", claimed_by=ask.owner, claimed_until=ask.lease_until,
                updated_at=now)
        .returning(*t.c)
    )  # fmt: skip


def claim_arguments(ask: ClaimAsk) -> dict[str, Any]:
    """`claim_statement`'s values for `ask` (uncapped: every destination's cap is `want`)."""
    capped_ = ask.default_room is not None or bool(ask.room)
    return {
        "now": ask.now,
        "lease_until": ask.lease_until,
        "owner": ask.owner,
        "scan": ask.scan,
        "want": ask.want,
        "default_cap": ask.default_room if capped_ else ask.want,
        "excluded": list(ask.excluded),
        "room_keys": list(ask.room),
        "room_caps": list(ask.room.values()),
    }
