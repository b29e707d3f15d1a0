"""A plain submission's statement, grouped with the others waiting when intake's writes are busy.

Why: at 64 clients a submission's one statement (fast_writes.py) is a round trip, a
backend woken, an executor started and a commit of its own; intake's CPU and
PostgreSQL's (a third of it in the kernel: a backend woken per statement) were spread
over those per-statement costs (profiled, sixteenth round). Submissions that arrive while
the writes are busy share them instead: their statements go as executions of the one
prepared statement pipelined in one round trip (asyncpg's `fetchmany`: one Bind and
Execute each, one Sync), which PostgreSQL runs as one implicit transaction, committed at
the Sync. Each caller gets its own row, and only once that commit is done, so nothing is
answered before it is durable, and each caller then goes on (its outbox hand-over, its
log line, its 201) exactly as after a lone write.

As PostgreSQL's own group commit does, a group forms only from what is already waiting,
never by waiting for more: while fewer than `writers` writes are in flight a statement
goes at once, alone, as before this module (no timer, no extra loop turn). Only a
statement that finds every writer busy waits, and the next writer to finish takes the
waiting ones of the same SQL (at most `most`) as its next write. The writers are a few of
the pool's connections, so reads, the sealer and the relay keep the rest.

A group's executions see each other (one transaction, in order): two submissions of one
reference in a group are as two in a row, the second finding the first's notice. They
go in the order of their (source, reference), so two groups never wait on each other's
references in opposite orders. A group that fails (a dropped connection, an error in any
one execution: nothing of it was written) hands each of its statements back to its
caller, which sends it alone as before and so gets the answer it would have got alone.
(A connection lost during the commit may have committed the group: each statement alone
then finds its reference taken by its own notice and answers as a retry does.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import fetchmany_borrowed, fetchrow_borrowed
from services.common.logging import get_logger

__all__ = ["GroupedWrites"]

log = get_logger(__name__)

# The answer of a waiting statement whose group failed: send it alone.
_ALONE: Any = object()


@dataclass(frozen=True)
class _Waiting:
    sql: str
    arguments: Sequence[Any]
    order: tuple[str, ...]
    answer: asyncio.Future[Any]


class GroupedWrites:
    """One process's autocommitted statements on `engine`, grouped when `writers` are busy."""

    def __init__(self, engine: AsyncEngine, *, writers: int = 3, most: int = 32) -> None:
        if writers < 1 or most < 1:
            raise ValueError("writers and most must be at least 1")
        self._engine = engine
        self._writers = writers
        self._most = most
        self._in_flight = 0
        self._waiting: deque[_Waiting] = deque()
        self._groups: set[asyncio.Task[None]] = set()
        # Statements that waited for a writer, and those written in a group of two or
        # more: what the tests read of the path a statement took.
        self.waited = 0
        self.grouped = 0

    @property
    def engine(self) -> AsyncEngine:
        """The engine whose pool the writes borrow their connections from."""
        return self._engine

    @property
    def waiting(self) -> int:
        """How many statements wait for a writer now."""
        return len(self._waiting)

    async def fetchrow(
        self, sql: str, arguments: Sequence[Any], *, order: tuple[str, ...] = ()
    ) -> Any:
        """`sql` with `arguments`, autocommitted: its one row, once it is committed.

        `order`: where it goes in a group (by this, ascending).
        """
        # Nothing waits while a writer is free (`_freed` hands a freed writer to what
        # waits at once), so this is the lone path exactly as without grouping.
        if self._in_flight < self._writers:
            self._in_flight += 1
            try:
                return await fetchrow_borrowed(self._engine, sql, arguments)
            finally:
                self._freed()
        waiting = _Waiting(sql, arguments, order, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        self.waited += 1
        row = await waiting.answer
        if row is _ALONE:
            return await fetchrow_borrowed(self._engine, sql, arguments)
        return row

    def _freed(self) -> None:
        """A writer is free: it takes the next group, or is counted free."""
        group = self._next_group()
        if not group:
            self._in_flight -= 1
            return
        task = asyncio.get_running_loop().create_task(self._write(group))
        self._groups.add(task)
        task.add_done_callback(self._groups.discard)

    def _next_group(self) -> list[_Waiting]:
        """The waiting statements of the first one's SQL (at most `most`), in their order;
        the others keep their place."""
        waiting = self._waiting
        while waiting and waiting[0].answer.done():  # its caller gave up
            waiting.popleft()
        if not waiting:
            return []
        sql = waiting[0].sql
        group: list[_Waiting] = []
        kept: deque[_Waiting] = deque()
        for each in waiting:
            if each.answer.done():
                continue
            if each.sql == sql and len(group) < self._most:
                group.append(each)
            else:
                kept.append(each)
        self._waiting = kept
        group.sort(key=lambda each: each.order)
        return group

    async def _write(self, group: list[_Waiting]) -> None:
        try:
            if len(group) == 1:
                (only,) = group
                rows = [await fetchrow_borrowed(self._engine, only.sql, only.arguments)]
            else:
                rows = await fetchmany_borrowed(
                    self._engine, group[0].sql, [each.arguments for each in group]
                )
                if len(rows) != len(group):
                    raise RuntimeError("a grouped statement must answer one row an execution")
        except BaseException as exc:
            # Nothing of the group was written (one transaction): each caller sends its
            # own statement alone and gets that one's answer or error. Only the error's
            # class is logged: its text may quote a submission's values.
            if len(group) > 1:
                log.info("notice.group_write_failed", size=len(group), error=type(exc).__name__)
            for each in group:
                if each.answer.done():
                    continue
                if len(group) == 1 and isinstance(exc, Exception):
                    each.answer.set_exception(exc)  # it was written alone: its own answer
                else:
                    each.answer.set_result(_ALONE)
            if not isinstance(exc, Exception):
                raise
        else:
            if len(group) > 1:
                self.grouped += len(group)
            for each, row in zip(group, rows, strict=True):
                if not each.answer.done():
                    each.answer.set_result(row)
        finally:
            self._freed()
