"""A wake-up the relay's loop waits on with a time limit, resumed one loop turn after `set`.

`asyncio.wait_for(event.wait(), timeout)` costs the waiter three turns of the event loop on
Python 3.11 (the event wakes the task `wait_for` made for `event.wait()`, whose end wakes
`wait_for`'s own future, which wakes the waiter) and a new task per wait. Each turn queues
behind every callback already ready, and at a commit there are several (the request's own
remainder, the consumer's next message, the delivery engine's sends), so a handed-over row
waited behind all of them three times before its produce request was even built. Here `set`
resolves the future the waiter awaits: one turn, no task.
"""

from __future__ import annotations

import asyncio

__all__ = ["Wakeup"]


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Wakeup:
    """A flag one task waits on (`wait`), set from any callback of the same loop (`set`)."""

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        """Raise the flag and resume the waiter, if one waits, at the next loop turn."""
        self._set = True
        if self._waiter is not None:
            _release(self._waiter)

    def clear(self) -> None:
        """Lower the flag."""
        self._set = False

    def is_set(self) -> bool:
        """Whether the flag is raised."""
        return self._set

    @property
    def waiting(self) -> bool:
        """Whether a task waits on it now (the relay's loop is idle)."""
        return self._waiter is not None

    async def wait(self, timeout_s: float) -> bool:
        """Wait until the flag is raised or `timeout_s` passed; whether it is raised."""
        if self._set:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(timeout_s, _release, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return self._set
