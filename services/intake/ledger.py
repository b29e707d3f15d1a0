"""SQL for what intake remembers about requests: Idempotency-Keys and signed requests.

Both guard against a request taking effect twice; both are pruned once too old to matter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.direct import is_postgres_session
from services.intake.domain import Operation, StoredIdempotencyKey
from services.intake.fast_writes import lock_statement
from services.intake.tables import idempotency_keys, signature_replays

__all__ = ["RequestLedger"]


def _lock_id(key: str) -> int:
    # A signed 64-bit id, as pg_advisory_xact_lock takes; a collision only serialises two
    # unrelated requests, never lets two related ones through.
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big", signed=True)


class RequestLedger:
    """Idempotency-Keys and signature replays of one unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def idempotency_key(self, *, source_key: str, key: str) -> StoredIdempotencyKey | None:
        """What a source's Idempotency-Key was first used for."""
        k = idempotency_keys.c
        query = sa.select(k.operation, k.notice_id, k.content_digest).where(
            k.source_key == source_key, k.idempotency_key == key
        )
        row = (await self._session.execute(query)).one_or_none()
        if row is None:
            return None
        return StoredIdempotencyKey(row.operation, row.notice_id, row.content_digest)

    async def remember_key(
        self,
        *,
        source_key: str,
        key: str,
        operation: Operation,
        notice_id: str,
        digest: str,
        now: datetime,
    ) -> None:
        """Remember what an Idempotency-Key was used for."""
        await self._session.execute(
            sa.insert(idempotency_keys).values(
                source_key=source_key,
                idempotency_key=key,
                operation=operation,
                notice_id=notice_id,
                content_digest=digest,
                created_at=now,
            )
        )

    async def record_signature(
        self, *, fingerprint: str, signed_at: datetime, now: datetime
    ) -> bool:
        """Remember a signed request; False when it was seen before (a replay)."""
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(signature_replays)
            .values(fingerprint=fingerprint, signed_at=signed_at, seen_at=now)
            .on_conflict_do_nothing(index_elements=["fingerprint"])
            .returning(signature_replays.c.fingerprint)
        )
        return (await self._session.execute(statement)).first() is not None

    async def lock_keys(self, keys: Sequence[str]) -> None:
        """Lock these natural keys until the transaction ends (PostgreSQL advisory locks).

        In a fixed order, so two requests sharing keys cannot deadlock. SQLite needs
        none: its writer lock (BEGIN IMMEDIATE) already serialises every write.
        """
        if self._session.get_bind().dialect.name != "postgresql" or not keys:
            return
        ids = sorted({_lock_id(key) for key in keys})
        if is_postgres_session(self._session):
            # The first statement of every write: sent straight through asyncpg (direct.py).
            await lock_statement(len(ids)).execute(
                self._session, {f"id_{n}": lock_id for n, lock_id in enumerate(ids)}
            )
            return
        await self._session.execute(
            sa.select(*(sa.func.pg_advisory_xact_lock(sa.literal(i, sa.BigInteger)) for i in ids))
        )

    async def prune(self, *, replays_before: datetime, keys_before: datetime) -> int:
        """Forget signed requests and Idempotency-Keys older than the cutoffs; how many."""
        replays = await self._session.execute(
            sa.delete(signature_replays).where(signature_replays.c.seen_at < replays_before)
        )
        keys = await self._session.execute(
            sa.delete(idempotency_keys).where(idempotency_keys.c.created_at < keys_before)
        )
        return sum(int(getattr(result, "rowcount", 0) or 0) for result in (replays, keys))
