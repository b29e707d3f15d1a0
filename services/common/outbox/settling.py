"""A relay's settling: sent rows deleted, failed ones held back; handed rounds' deletes merged.

At a low rate a handed round is one notice's rows (intake's `notice.received`, router's
alert events), and deleting them at once cost a statement per notice: a round trip, a
wake-up of the relay's loop and of its PostgreSQL backend, and a transaction's commit.
So the rows a handed round sent are deleted a moment later (`defer_s`), together with the
next rounds' (one statement for a few notices at 10/s); a claim round, a failure, a stop
or SQLite settle at once, and take the waiting ones along.

A sent row left a moment is harmless: it stays leased to this relay, so no claim takes it
and a key's later row is handed here as before (handoff.py). A crash before the delete
publishes it again once the lease ends, which consumers absorb through their inbox, as
after a crash between the acknowledgement and an immediate delete. `defer_s` is at most a
sixth of the lease (and half a second): with a linger of at most another sixth
(lingering.py) a row is gone well before a lease set at its insert ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.direct import DirectStatement
from services.common.outbox.statements import RelayStatements
from services.common.outbox.writing import OutboxRow

__all__ = ["Settling"]

_DUE_SLACK_S = 0.002
_DEFER_MAX_S = 0.5


class Settling:
    """Deletes a relay's sent rows (some a moment later) and holds its failed rows back."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        statements: RelayStatements,
        postgres: bool,
        lease_s: float,
        defer_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A sixth of the lease (0.33 s at the default 2 s), and never long: a test's or a
        # department's long lease would otherwise keep sent rows for seconds.
        defer_s = min(lease_s / 6, _DEFER_MAX_S) if defer_s is None else defer_s
        if not 0 <= defer_s <= lease_s / 6:
            raise ValueError("defer_s must be between 0 and a sixth of the claim lease")
        self._engine = engine
        self._sessions = sessions
        self._statements = statements
        self._delete_sent = DirectStatement(lambda: statements.delete_sent)
        # Only PostgreSQL hands rows over (SQLite claims every row): nothing to merge there.
        self.defer_s = defer_s if postgres else 0.0
        self._postgres = postgres
        self._clock = clock
        self._waiting: list[int] = []
        self._first_at = 0.0
        # When the earliest lease left on the outbox ends, as the last settling read it.
        self.lease_ends_in_s: float | None = None

    @property
    def waiting(self) -> bool:
        """Whether sent rows wait to be deleted."""
        return bool(self._waiting)

    def due_in(self) -> float | None:
        """Seconds until the waiting rows are due (None: none wait)."""
        if not self._waiting:
            return None
        return self._first_at + self.defer_s - self._clock()

    async def settle(
        self,
        sent: list[int],
        failed: list[tuple[OutboxRow, BaseException]],
        *,
        defer: bool = False,
    ) -> None:
        """Delete `sent` (now, or with the next rounds' if `defer`) and hold `failed` back."""
        self.lease_ends_in_s = None
        if defer and sent and not failed and self.defer_s > 0:
            if not self._waiting:
                self._first_at = self._clock()
            self._waiting.extend(sent)
            return
        sent, self._waiting = [*self._waiting, *sent], []
        statements = self._statements
        if self._postgres and sent and not failed:
            # The usual settling: straight to asyncpg, autocommitted (direct.py).
            row = await self._delete_sent.fetchrow_alone(
                self._engine, statements.delete_sent_values(sent)
            )
            self.lease_ends_in_s = statements.seconds_until(None if row is None else row[0])
            return
        async with self._sessions() as session, session.begin():
            for row, error in failed:
                await session.execute(
                    statements.hold_back, statements.hold_back_values(row.id, type(error).__name__)
                )
            if sent:
                ends = await session.execute(
                    statements.delete_sent, statements.delete_sent_values(sent)
                )
                self.lease_ends_in_s = statements.seconds_until(ends.scalar())

    def due(self) -> bool:
        """Whether waiting rows are due (timers may fire a little early: within 2 ms)."""
        due_in = self.due_in()
        return due_in is not None and due_in < _DUE_SLACK_S

    async def delete_waiting(self) -> int:
        """Delete the rows waiting, now (due, a stop); 0 (a round that published nothing)."""
        if self._waiting:
            await self.settle([], [])
        return 0

    async def earliest_lease_end_s(self) -> float | None:
        """Seconds until the earliest lease on an unsent row ends (negative: ended)."""
        statements = self._statements
        async with self._sessions() as session:
            if self._waiting:
                found = await session.execute(
                    statements.earliest_lease_but_waiting, {"waiting": self._waiting}
                )
            else:
                found = await session.execute(statements.earliest_lease)
            value = found.scalar()
        return statements.seconds_until(value)
