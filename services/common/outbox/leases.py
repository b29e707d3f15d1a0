"""The heartbeat that keeps a relay's claims on outbox rows while it publishes them, and
the lease taken again on rows handed over too long ago to trust theirs.

On PostgreSQL the lease is stamped and compared with the database's clock, so clock
skew between application hosts cannot eat into a 2 s lease. If a relay's event loop
stalls for longer than the lease, another relay may publish the same row again: a
duplicate, never a gap and never a later row of the key first (a row becomes
claimable only once its predecessor is deleted as sent, which only the predecessor's
current holder can do, or together with it), and consumers drop the duplicate through
their inbox."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.direct import DirectStatement
from services.common.logging import get_logger
from services.common.outbox.statements import RelayStatements
from services.common.outbox.writing import OutboxRow

__all__ = ["LeaseKeeper", "renew", "retake"]

log = get_logger(__name__)


async def retake(
    engine: AsyncEngine,
    renewal: DirectStatement,
    rows: Sequence[OutboxRow],
    stale: set[int],
) -> tuple[list[OutboxRow], set[str]]:
    """Lease the `stale` of `rows` again, in one statement: (the rows to publish, the keys
    to leave to a claim).

    `renewal` (the relay's, returning the ids it renewed; straight to asyncpg and
    autocommitted, as the settling) renews only rows still leased to this relay. A key
    with a stale row another relay took meanwhile (its lease had ended) goes to a claim
    whole: its other rows here must not pass that one.
    """
    kept = {record[0] for record in await renewal.fetch_alone(engine, {"ids": sorted(stale)})}
    lost = {row.key for row in rows if row.id in stale and row.id not in kept}
    return [row for row in rows if row.key not in lost], lost


async def renew(
    sessions: async_sessionmaker[AsyncSession],
    statements: RelayStatements,
    relay_id: str,
    ids: list[int],
) -> None:
    """Extend `relay_id`'s lease on `ids` (the heartbeat); say so if any were lost."""
    try:
        async with sessions() as session, session.begin():
            result = await session.execute(statements.renew, statements.renew_values(ids))
    except Exception as exc:
        # The next beat tries again; if the database stays away no other relay can
        # claim the rows either.
        log.warning("outbox.lease_renewal_failed", relay_id=relay_id, error=type(exc).__name__)
        return
    renewed = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if renewed < len(ids):
        # Only after this relay stalled longer than the lease: another relay may publish
        # those rows again (a duplicate the inbox absorbs, never a reordering).
        log.warning("outbox.lease_lost", relay_id=relay_id, held=len(ids), renewed=renewed)


class LeaseKeeper:
    """Renews a round's claims every `every_s` until stopped (the relay's heartbeat).

    A timer, not a task: almost every round ends long before its first renewal is due, and
    a heartbeat task (with the task `asyncio.wait_for` makes for each of its waits) cost a
    round two tasks and, at `stop`, three loop turns before the rows could be settled.
    Now `stop` cancels the timer and returns at once, unless a renewal is under way: then it
    waits for that renewal to end, so once `stop` returns no renewal is running or will start
    and the relay can settle its rows without a renewal racing it.
    """

    def __init__(self, *, renew: Callable[[], Awaitable[None]], every_s: float) -> None:
        # `renew` reports its own failures (the relay logs and carries on); it must not raise.
        self._renew = renew
        self._every_s = every_s
        self._stopped = False
        self._timer: asyncio.TimerHandle | None = None
        self._renewing: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaseKeeper:
        self._schedule()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """No renewal from now on; returns once a renewal under way has ended."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._renewing is not None:
            await self._renewing

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._every_s, self._beat)

    def _beat(self) -> None:
        self._timer = None
        if not self._stopped:
            self._renewing = asyncio.create_task(self._renew_once(), name="outbox-lease-renewal")

    async def _renew_once(self) -> None:
        try:
            if not self._stopped:  # stopped between the timer and this task's first turn
                await self._renew()
        finally:
            self._renewing = None
            # Counted from the end of this renewal, as before: a slow database never
            # stacks renewals up.
            if not self._stopped:
                self._schedule()
