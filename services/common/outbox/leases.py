"""The heartbeat that keeps a relay's claims on outbox rows while it publishes them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["LeaseKeeper"]


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
