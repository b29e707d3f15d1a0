"""The relay's statements, built once per relay instead of once per round.

A row the broker acknowledged is deleted, not marked sent: nobody reads a sent row, and
an UPDATE of `sent_at` (an indexed column) wrote the whole row again, a new entry in
each of the table's indexes and a dead tuple, where a DELETE writes a few bytes per row.
So a present row is an unsent one, except rows marked sent before this change (their
`sent_at` is set): the statements still ask `sent_at IS NULL` to leave those out, and the
retention (services/common/retention.py) deletes them once they are old enough.

A relay round runs the same few statements with different ids and times. Building one
(two aliases of the outbox table, a correlated subquery, a RETURNING list) and deriving
its cache key took SQLAlchemy longer than PostgreSQL took to run it, every round, in
every service. Built once, a statement keeps its memoised cache key, so each round only
binds its values: the ids (one array on PostgreSQL, an expanding IN on SQLite) and,
on SQLite, the times. On PostgreSQL
the times are the database's clock (`clock_timestamp()`), written into the statement:
every relay, on any host, reads the same time, so a 2 s lease does not depend on the
hosts' clocks agreeing (SQLite is one file on one host, whose clock all relays share).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.common.messaging import outbox_messages

__all__ = ["RelayStatements"]

_TIMESTAMP = sa.DateTime(timezone=True)
# Whether a row of the same key waits behind a claimed one (it becomes claimable once
# the claimed one is deleted as sent, so the loop claims again without waiting). Written out:
# SQLite's compiler drops the table names inside RETURNING, which would turn the
# correlation into `key = key`.
_HAS_SUCCESSOR = sa.literal_column(
    "EXISTS (SELECT 1 FROM outbox_messages AS later WHERE later.key = outbox_messages.key"
    " AND later.sent_at IS NULL AND later.id > outbox_messages.id)",
    sa.Boolean(),
).label("has_successor")

# How many of the oldest unsent rows the settling looks at for the earliest lease.
_EARLIEST_OF = 64


class RelayStatements:
    """Claim, hold back, delete sent rows, renew and the earliest lease, for one relay."""

    def __init__(
        self,
        *,
        postgres: bool,
        relay_id: str,
        batch_size: int,
        claim_ttl_s: float,
        retry_delay_s: float,
    ) -> None:
        self._postgres = postgres
        self._claim_ttl = timedelta(seconds=claim_ttl_s)
        self._retry_delay = timedelta(seconds=retry_delay_s)
        t = outbox_messages
        mine = t.c.claimed_by == relay_id
        lease = self._lease_until(claim_ttl_s, "lease_until")
        self.claim = self._claim(relay_id, batch_size, lease)
        # Keep a failed row's claim a little longer: the key's later rows wait behind it.
        self.hold_back = (
            sa.update(t)
            .where(t.c.id == sa.bindparam("row_id"), mine)
            .values(
                claimed_until=self._lease_until(retry_delay_s, "retry_until"),
                last_error=sa.bindparam("error"),
            )
        )
        # Only rows this relay still holds: a row whose lease another relay took over
        # (this one stalled) stays for that relay, which publishes it again.
        self.delete_sent = (
            sa.delete(t).where(self._among(t.c.id), mine).returning(self._earliest_other_lease())
        )
        self.renew = (
            sa.update(t)
            .where(self._among(t.c.id), mine, t.c.sent_at.is_(None))
            .values(claimed_until=lease)
        )
        # A handed row too old to trust its lease (relay.py): leased again while still
        # this relay's, and published; a row another relay took meanwhile is not returned.
        self.retake = self.renew.returning(t.c.id)
        earliest = sa.func.min(t.c.claimed_until)
        self.earliest_lease = sa.select(
            sa.extract("epoch", earliest - sa.func.clock_timestamp()) if postgres else earliest
        ).where(t.c.sent_at.is_(None), t.c.claimed_until.is_not(None))
        # The same with this relay's sent rows waiting to be deleted left out (settling.py):
        # their leases would bring its claim forward for rows about to go.
        self.earliest_lease_but_waiting = self.earliest_lease.where(
            t.c.id.not_in(sa.bindparam("waiting", expanding=True))
        )

    def _claim(self, relay_id: str, batch_size: int, lease: sa.ColumnElement[Any]) -> sa.Update:
        """A key's consecutive unsent rows nobody holds, oldest first, leased to this relay.

        A row is taken only with every earlier unsent row of its key: none of those may be
        leased (`claimable`), nor skipped by the LIMIT or by SKIP LOCKED (another relay's
        claim in progress; `chosen` drops a row whose predecessor is not in `claimable`).
        """
        t = outbox_messages
        now = sa.func.clock_timestamp(type_=_TIMESTAMP) if self._postgres else _at("now")
        # Aliases keep the subqueries from correlating with the UPDATE's own table.
        candidate = t.alias("candidate")
        earlier = t.alias("earlier")
        claimable = (
            sa.select(candidate.c.id, candidate.c.key)
            .where(
                candidate.c.sent_at.is_(None),
                sa.or_(candidate.c.claimed_until.is_(None), candidate.c.claimed_until < now),
                ~sa.exists().where(
                    earlier.c.key == candidate.c.key,
                    earlier.c.sent_at.is_(None),
                    earlier.c.id < candidate.c.id,
                    earlier.c.claimed_until >= now,
                ),
            )
            .order_by(candidate.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True, of=candidate)
            .cte("claimable")
        )
        left_out = t.alias("left_out")
        taken = sa.select(claimable.c.id).scalar_subquery().correlate(None)
        chosen = sa.select(claimable.c.id).where(
            ~sa.exists().where(
                left_out.c.key == claimable.c.key,
                left_out.c.sent_at.is_(None),
                left_out.c.id < claimable.c.id,
                left_out.c.id.not_in(taken),
            )
        )
        return (
            sa.update(t)
            .where(t.c.id.in_(chosen.scalar_subquery()))
            .values(claimed_by=relay_id, claimed_until=lease, attempts=t.c.attempts + 1)
            .returning(
                t.c.id,
                t.c.message_id,
                t.c.topic,
                t.c.key,
                t.c.event_type,
                t.c.headers,
                t.c.payload,
                _HAS_SUCCESSOR,
            )
        )

    def _earliest_other_lease(self) -> sa.ColumnElement[Any]:
        """When the earliest lease on one of the oldest unsent rows not being deleted as
        sent ends.

        Read in the settling statement itself, which sees the rows as they were before
        it, so the rows it deletes are left out by id. Seconds on PostgreSQL. Only the
        `_EARLIEST_OF` oldest rows are looked at (the primary key's order, where the scan
        stops): the minimum over every unsent row read the whole backlog at every
        settling, so a relay behind slowed as it fell further behind. A lease is set at
        the row's insert or claim and renewed with its round, so the oldest rows hold the
        earliest leases (a dead relay's among them); a later one missed here is found by
        the next idle look (`earliest_lease`) or the poll.
        """
        other = outbox_messages.alias("other")
        oldest = (
            sa.select(other.c.claimed_until)
            .where(
                other.c.sent_at.is_(None),
                other.c.claimed_until.is_not(None),
                ~self._among(other.c.id),
            )
            .order_by(other.c.id)
            .limit(_EARLIEST_OF)
            .subquery("oldest")
        )
        earliest = sa.select(sa.func.min(oldest.c.claimed_until)).scalar_subquery()
        if self._postgres:
            return sa.extract("epoch", earliest - sa.func.clock_timestamp())
        return earliest

    def _among(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """`column` is one of `:ids`: one array on PostgreSQL, so one prepared statement
        for every batch size (the settling also goes straight to asyncpg there); an
        expanding IN on SQLite."""
        if self._postgres:
            return column == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.BigInteger)))
        return column.in_(sa.bindparam("ids", expanding=True))

    def seconds_until(self, value: Any) -> float | None:
        """A lease end as a statement returns it (PostgreSQL: seconds already; SQLite: a
        naive UTC time)."""
        if value is None:
            return None
        if self._postgres:
            return float(value)
        ends = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if ends.tzinfo is None:  # SQLite keeps the UTC wall time without its zone
            ends = ends.replace(tzinfo=UTC)
        return float((ends - datetime.now(UTC)).total_seconds())

    def _lease_until(self, seconds: float, name: str) -> sa.ColumnElement[datetime]:
        if self._postgres:
            return sa.func.clock_timestamp(type_=_TIMESTAMP) + sa.func.make_interval(
                0, 0, 0, 0, 0, 0, seconds, type_=sa.Interval()
            )
        return _at(name)

    # -- the values of one execution ---------------------------------------------
    # SQLite's times are the host's, bound per execution; PostgreSQL's are in the SQL.

    def claim_values(self) -> dict[str, Any]:
        if self._postgres:
            return {}
        now = datetime.now(UTC)
        return {"now": now, "lease_until": now + self._claim_ttl}

    def renew_values(self, ids: list[int]) -> dict[str, Any]:
        if self._postgres:
            return {"ids": ids}
        return {"ids": ids, "lease_until": datetime.now(UTC) + self._claim_ttl}

    def hold_back_values(self, row_id: int, error: str) -> dict[str, Any]:
        values: dict[str, Any] = {"row_id": row_id, "error": error}
        if not self._postgres:
            values["retry_until"] = datetime.now(UTC) + self._retry_delay
        return values

    @staticmethod
    def delete_sent_values(ids: list[int]) -> dict[str, Any]:
        return {"ids": ids}


def _at(name: str) -> sa.BindParameter[datetime]:
    return sa.bindparam(name, type_=_TIMESTAMP)
