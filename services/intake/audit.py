"""The hash-chained audit log: every create, update, cancel, restricted read and purge.

Requests append without any lock: an entry is one INSERT into `audit_pending`, in the
request's own transaction, so it exists if and only if what it records committed. The
sealer (`seal_pending`, run by a background worker) then chains committed entries into
`audit_log` in batches, oldest first: each gets the next `seq`, the previous entry's
hash, and its own hash, an HMAC-SHA256 under the audit key. The key lives in the
service's settings, never in the database, so write access to the database alone
cannot rebuild a valid chain after changing, removing or reordering an entry.

One sealing takes effect at a time. On PostgreSQL a round is two statements, each a
transaction of its own: the head and the pending entries read together, then the batch
written only if the head is still the one read (a racing sealer's round writes nothing
and reads again). On SQLite the sealer locks the one-row head table, which no request
touches. `verify_chain` walks the chain and names the first broken link; entries still
waiting to be sealed are counted, not verified (they are seconds old at most while a
sealer runs).

Entries sealed before the chain was keyed (`audit_chain_head.unkeyed_seq`) keep their
plain SHA-256 links and are verified as such.

Entries hold ids, roles and reason codes only, never restricted detail: the audit
trail outlives the purge of what it describes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.common.bulk import insert_rows
from services.common.cloudevents import current_correlation_id
from services.common.db import is_postgres
from services.common.ids import new_id
from services.intake.domain import AuditNote, canonical_json
from services.intake.tables import (
    AUDIT_GENESIS_HASH,
    audit_chain_head,
    audit_log,
    audit_pending,
)

__all__ = [
    "AuditEntry",
    "AuditTrail",
    "ChainReport",
    "SealRaced",
    "entry_hash",
    "seal_pending",
    "verify_chain",
]

_HEAD_ID = 1
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _iso(value: datetime) -> str:
    # SQLite hands back naive datetimes and PostgreSQL aware ones in the session's zone;
    # the hash must read the same instant the same way whichever wrote or read it.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class AuditEntry:
    """One link of the chain, as stored."""

    seq: int
    entry_id: str
    occurred_at: datetime
    action: str
    notice_id: str | None
    version: int | None
    actor_token_id: str | None
    actor_role: str | None
    correlation_id: str | None
    details: Mapping[str, Any]
    prev_hash: str


def entry_hash(entry: AuditEntry, *, key: bytes | None) -> str:
    """HMAC-SHA256 under `key` of the entry's canonical JSON, which includes the previous
    hash; plain SHA-256 for `key=None` (entries sealed before the chain was keyed)."""
    payload = {
        "seq": entry.seq,
        "entry_id": entry.entry_id,
        "occurred_at": _iso(entry.occurred_at),
        "action": entry.action,
        "notice_id": entry.notice_id,
        "version": entry.version,
        "actor_token_id": entry.actor_token_id,
        "actor_role": entry.actor_role,
        "correlation_id": entry.correlation_id,
        "details": dict(entry.details),
        "prev_hash": entry.prev_hash,
    }
    if key is None:
        return hashlib.sha256(canonical_json(payload)).hexdigest()
    return hmac.new(key, canonical_json(payload), hashlib.sha256).hexdigest()


class AuditTrail:
    """The audit log as one unit of work sees it: append only, no lock."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def append(self, note: AuditNote, *, now: datetime) -> None:
        """Write `note` as an entry for the sealer to chain (one INSERT)."""
        await self._session.execute(self.entry(note, now=now))

    @staticmethod
    def entry(note: AuditNote, *, now: datetime) -> sa.Insert:
        """The INSERT that `append` runs, for a caller that sends it with its other writes."""
        return sa.insert(audit_pending).values(**AuditTrail.entry_values(note, now=now))

    @staticmethod
    def entry_values(note: AuditNote, *, now: datetime) -> dict[str, Any]:
        """The `audit_pending` row of `note`: what `entry` inserts."""
        actor = note.actor
        return {
            "entry_id": new_id(),
            "occurred_at": now.astimezone(UTC),
            "action": note.action,
            "notice_id": note.notice_id,
            "version": note.version,
            "actor_token_id": actor.token_id if actor else None,
            "actor_role": actor.role.value if actor else None,
            "correlation_id": current_correlation_id.get(),
            "details": dict(note.details),
        }

    async def seal(self, *, key: bytes, batch_size: int = 500) -> int:
        """Chain a batch of committed entries (the sealer's job; see `seal_pending`)."""
        return await seal_pending(self._session, key=key, batch_size=batch_size)


class SealRaced(Exception):
    """Another sealer chained from the same head first: nothing of this round was written
    (PostgreSQL's round; the next round reads the new head)."""


async def seal_pending(session: AsyncSession, *, key: bytes, batch_size: int = 500) -> int:
    """Chain up to `batch_size` committed entries, oldest first; how many were sealed.

    On PostgreSQL in two statements of their own, outside the caller's transaction
    (`_seal_in_two`). Elsewhere (SQLite) in the caller's transaction, which the caller
    commits: the head row's lock serialises sealers, and pending entries are read after
    it is held, so two sealers never chain the same entry.
    """
    engine = session.bind
    if isinstance(engine, AsyncEngine) and is_postgres(engine):
        return await _seal_in_two(engine, key=key, batch_size=batch_size)
    head = (
        await session.execute(
            sa.select(audit_chain_head.c.seq, audit_chain_head.c.entry_hash)
            .where(audit_chain_head.c.id == _HEAD_ID)
            .with_for_update()
        )
    ).one()
    pending = (
        await session.execute(
            sa.select(audit_pending).order_by(audit_pending.c.id).limit(batch_size)
        )
    ).all()
    if not pending:
        return 0
    seq, prev_hash = int(head.seq), str(head.entry_hash)
    sealed = _chained(pending, seq=seq, prev_hash=prev_hash, key=key)
    seq, prev_hash = sealed[-1]["seq"], sealed[-1]["entry_hash"]
    # One statement for the batch on PostgreSQL (one array per column), not one per entry.
    await insert_rows(session, audit_log, sealed)
    # By id, not by range: an entry that committed after the read must stay pending.
    await session.execute(
        sa.delete(audit_pending).where(audit_pending.c.id.in_([row.id for row in pending]))
    )
    await session.execute(
        sa.update(audit_chain_head)
        .where(audit_chain_head.c.id == _HEAD_ID)
        .values(seq=seq, entry_hash=prev_hash)
    )
    return len(sealed)


def _chained(
    pending: Sequence[Any], *, seq: int, prev_hash: str, key: bytes
) -> list[dict[str, Any]]:
    """The `audit_log` rows of `pending`, chained after the entry `seq` whose hash is
    `prev_hash`."""
    sealed: list[dict[str, Any]] = []
    for row in pending:
        seq += 1
        entry = _pending_entry(row, seq=seq, prev_hash=prev_hash)
        prev_hash = entry_hash(entry, key=key)
        sealed.append({**_columns(entry), "entry_hash": prev_hash})
    return sealed


# The head and the oldest pending entries, read in one statement (one snapshot): no lock.
_PENDING_COLUMNS = ", ".join(f"p.{c.name}" for c in audit_pending.c)
_READ = sa.text(
    f"SELECT h.seq AS head_seq, h.entry_hash AS head_hash, {_PENDING_COLUMNS} "  # noqa: S608
    "FROM audit_chain_head h LEFT JOIN LATERAL "
    "(SELECT * FROM audit_pending ORDER BY id LIMIT :batch) p ON true "
    f"WHERE h.id = {_HEAD_ID} ORDER BY p.id"
).columns(
    sa.column("head_seq", sa.BigInteger),
    sa.column("head_hash", sa.String),
    *(sa.column(c.name, c.type) for c in audit_pending.c),
)


@cache
def _write(columns: tuple[str, ...]) -> sa.TextClause:
    """The batch sealed in one statement: the head moved on if it is still the one read,
    and only then the entries into the log (one array per column, in order) and the
    pending rows out by id. A sealer that read the same head and wrote first leaves
    `moved` empty (PostgreSQL rechecks the row after waiting for its lock), so nothing of
    this round is written; the log's keys (seq, prev_hash) still refuse a fork."""
    names = ", ".join(columns)
    arrays = ", ".join(
        f"CAST(:{name} AS {audit_log.c[name].type.compile(dialect=_PG)}[])" for name in columns
    )
    # Identifiers and types come from the table's metadata; every value is bound.
    sql = (
        "WITH moved AS (UPDATE audit_chain_head SET seq = :new_seq, entry_hash = :new_hash "  # noqa: S608
        f"WHERE id = {_HEAD_ID} AND seq = :old_seq AND entry_hash = :old_hash RETURNING id), "
        "gone AS (DELETE FROM audit_pending WHERE id = ANY(CAST(:pending_ids AS BIGINT[])) "
        "AND EXISTS (SELECT 1 FROM moved)), "
        f"added AS (INSERT INTO audit_log ({names}) SELECT {names} "
        f"FROM unnest({arrays}) WITH ORDINALITY AS r({names}, _n) "
        "WHERE EXISTS (SELECT 1 FROM moved) ORDER BY _n RETURNING seq) "
        "SELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM added) AS added"
    )
    # Typed parameters: each column's own bind processing (JSON, aware timestamps).
    return sa.text(sql).bindparams(
        *(sa.bindparam(name, type_=postgresql.ARRAY(audit_log.c[name].type)) for name in columns)
    )


async def _seal_in_two(engine: AsyncEngine, *, key: bytes, batch_size: int) -> int:
    """PostgreSQL: read the head and the pending entries in one statement and write the
    batch in one more, each a transaction of its own (no BEGIN, no COMMIT): two round
    trips a round, one with nothing to seal, where the lock, the read, the insert, the
    delete and the head's update in a transaction were seven (four with nothing). An
    entry is still deleted by id: one that committed after the read stays pending."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        rows = (await conn.execute(_READ, {"batch": batch_size})).all()
        pending = [row for row in rows if row.id is not None]
        if not pending:
            return 0
        old_seq, old_hash = int(rows[0].head_seq), str(rows[0].head_hash)
        sealed = _chained(pending, seq=old_seq, prev_hash=old_hash, key=key)
        columns = tuple(sealed[0])
        arguments = {name: [row[name] for row in sealed] for name in columns}
        written = (
            await conn.execute(
                _write(columns),
                {
                    **arguments,
                    "new_seq": sealed[-1]["seq"],
                    "new_hash": sealed[-1]["entry_hash"],
                    "old_seq": old_seq,
                    "old_hash": old_hash,
                    "pending_ids": [row.id for row in pending],
                },
            )
        ).one()
    if written.moved != 1:
        raise SealRaced()  # nothing was written: the next round reads the new head
    return int(written.added)


def _pending_entry(row: Any, *, seq: int, prev_hash: str) -> AuditEntry:
    return AuditEntry(
        seq=seq,
        entry_id=row.entry_id,
        occurred_at=row.occurred_at,
        action=row.action,
        notice_id=row.notice_id,
        version=row.version,
        actor_token_id=row.actor_token_id,
        actor_role=row.actor_role,
        correlation_id=row.correlation_id,
        details=row.details or {},
        prev_hash=prev_hash,
    )


def _columns(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "entry_id": entry.entry_id,
        "occurred_at": entry.occurred_at,
        "action": entry.action,
        "notice_id": entry.notice_id,
        "version": entry.version,
        "actor_token_id": entry.actor_token_id,
        "actor_role": entry.actor_role,
        "correlation_id": entry.correlation_id,
        "details": dict(entry.details),
        "prev_hash": entry.prev_hash,
    }


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a walk over the chain."""

    entries: int
    head_hash: str
    broken_at: int | None = None
    problem: str | None = None
    # Entries written but not yet sealed (not verified), and those sealed before the key.
    pending: int = 0
    unkeyed: int = 0

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def _stored_entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        entry_id=row.entry_id,
        occurred_at=row.occurred_at,
        action=row.action,
        notice_id=row.notice_id,
        version=row.version,
        actor_token_id=row.actor_token_id,
        actor_role=row.actor_role,
        correlation_id=row.correlation_id,
        details=row.details or {},
        prev_hash=row.prev_hash,
    )


def _broken_link(
    row: Any, *, expected_seq: int, prev_hash: str, key: bytes | None
) -> ChainReport | None:
    """The report for the first problem with this row as the next link, if any."""
    intact = expected_seq - 1
    if row.seq != expected_seq:
        return ChainReport(
            intact,
            prev_hash,
            broken_at=expected_seq,
            problem=f"entry {expected_seq} is missing (the next entry is {row.seq})",
        )
    if row.prev_hash != prev_hash:
        return ChainReport(
            intact,
            prev_hash,
            broken_at=row.seq,
            problem=f"entry {row.seq} does not point to entry {row.seq - 1}",
        )
    if not hmac.compare_digest(entry_hash(_stored_entry(row), key=key), row.entry_hash):
        return ChainReport(
            intact,
            prev_hash,
            broken_at=row.seq,
            problem=f"entry {row.seq} was altered after it was written",
        )
    return None


async def verify_chain(session: AsyncSession, *, key: bytes, batch_size: int = 1000) -> ChainReport:
    """Recompute every link in order with the audit key; report the first broken one."""
    unkeyed = int(
        (
            await session.execute(
                sa.select(audit_chain_head.c.unkeyed_seq).where(audit_chain_head.c.id == _HEAD_ID)
            )
        ).scalar()
        or 0
    )
    expected_seq = 1
    prev_hash = AUDIT_GENESIS_HASH
    while True:
        rows = (
            await session.execute(
                sa.select(audit_log)
                .where(audit_log.c.seq >= expected_seq)
                .order_by(audit_log.c.seq)
                .limit(batch_size)
            )
        ).all()
        if not rows:
            break
        for row in rows:
            broken = _broken_link(
                row,
                expected_seq=expected_seq,
                prev_hash=prev_hash,
                key=key if row.seq > unkeyed else None,
            )
            if broken is not None:
                return broken
            prev_hash = row.entry_hash
            expected_seq += 1
    entries = expected_seq - 1
    head = (
        await session.execute(
            sa.select(audit_chain_head.c.seq, audit_chain_head.c.entry_hash).where(
                audit_chain_head.c.id == _HEAD_ID
            )
        )
    ).one_or_none()
    if head is None or head.seq != entries or head.entry_hash != prev_hash:
        recorded = head.seq if head is not None else "unknown"
        return ChainReport(
            entries,
            prev_hash,
            broken_at=entries + 1,
            problem=f"the chain ends at entry {entries} but its head records entry {recorded}",
        )
    pending = (
        await session.execute(sa.select(sa.func.count()).select_from(audit_pending))
    ).scalar_one()
    return ChainReport(entries, prev_hash, pending=int(pending), unkeyed=min(unkeyed, entries))
