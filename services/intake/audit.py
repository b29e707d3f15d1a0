"""The hash-chained audit log: every create, update, cancel, restricted read and purge.

Each entry's hash covers its own fields and the previous entry's hash, so changing,
removing or reordering any entry breaks every link after it; `verify_chain` walks the
chain and names the first broken link. A one-row head table holds the latest hash:
writers lock it (`lock_chain`) at the start of their transaction, which serialises
appends so two requests can never both extend the same entry (a fork), and which
lets verification notice entries cut off the end of the chain.

Entries hold ids, roles and reason codes only, never restricted detail: the audit
trail outlives the purge of what it describes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.cloudevents import current_correlation_id
from services.intake.domain import AuditNote, canonical_json
from services.intake.tables import AUDIT_GENESIS_HASH, audit_chain_head, audit_log

__all__ = ["AuditEntry", "AuditTrail", "ChainReport", "entry_hash", "lock_chain", "verify_chain"]

_HEAD_ID = 1


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


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over the entry's canonical JSON, which includes the previous hash."""
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
    return hashlib.sha256(canonical_json(payload)).hexdigest()


async def lock_chain(session: AsyncSession) -> None:
    """Take the chain's write lock for this transaction (a row lock on PostgreSQL).

    Call it first in every transaction that appends: taking it late, after reading
    notices, would let two transactions decide on the same stale state.
    """
    await session.execute(
        sa.select(audit_chain_head.c.seq).where(audit_chain_head.c.id == _HEAD_ID).with_for_update()
    )


async def _append(session: AsyncSession, note: AuditNote, *, now: datetime) -> AuditEntry:
    """Append one entry in the caller's transaction (which must hold `lock_chain`)."""
    head = (
        await session.execute(
            sa.select(audit_chain_head.c.seq, audit_chain_head.c.entry_hash)
            .where(audit_chain_head.c.id == _HEAD_ID)
            .with_for_update()
        )
    ).one()
    actor = note.actor
    entry = AuditEntry(
        seq=int(head.seq) + 1,
        entry_id=str(uuid.uuid4()),
        occurred_at=now.astimezone(UTC),
        action=note.action,
        notice_id=note.notice_id,
        version=note.version,
        actor_token_id=actor.token_id if actor else None,
        actor_role=actor.role.value if actor else None,
        correlation_id=current_correlation_id.get(),
        details=dict(note.details),
        prev_hash=head.entry_hash,
    )
    digest = entry_hash(entry)
    await session.execute(
        sa.insert(audit_log).values(
            seq=entry.seq,
            entry_id=entry.entry_id,
            occurred_at=entry.occurred_at,
            action=entry.action,
            notice_id=entry.notice_id,
            version=entry.version,
            actor_token_id=entry.actor_token_id,
            actor_role=entry.actor_role,
            correlation_id=entry.correlation_id,
            details=entry.details,
            prev_hash=entry.prev_hash,
            entry_hash=digest,
        )
    )
    await session.execute(
        sa.update(audit_chain_head)
        .where(audit_chain_head.c.id == _HEAD_ID)
        .values(seq=entry.seq, entry_hash=digest)
    )
    return entry


class AuditTrail:
    """The audit chain as one unit of work sees it: lock first, then append."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def lock(self) -> None:
        """Take the chain's write lock; first thing in every transaction that writes."""
        await lock_chain(self._session)

    async def append(self, note: AuditNote, *, now: datetime) -> None:
        """Append `note` as the chain's next entry."""
        await _append(self._session, note, now=now)


@dataclass(frozen=True)
class ChainReport:
    """The outcome of a walk over the chain."""

    entries: int
    head_hash: str
    broken_at: int | None = None
    problem: str | None = None

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


def _broken_link(row: Any, *, expected_seq: int, prev_hash: str) -> ChainReport | None:
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
    if entry_hash(_stored_entry(row)) != row.entry_hash:
        return ChainReport(
            intact,
            prev_hash,
            broken_at=row.seq,
            problem=f"entry {row.seq} was altered after it was written",
        )
    return None


async def verify_chain(session: AsyncSession, *, batch_size: int = 1000) -> ChainReport:
    """Recompute every link in order; report the first broken one."""
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
            broken = _broken_link(row, expected_seq=expected_seq, prev_hash=prev_hash)
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
    return ChainReport(entries, prev_hash)
