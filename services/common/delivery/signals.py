"""Events the dispatcher waits on, without a task per wait.

Why: the dispatcher sleeps between rounds on "woken, or a commit heard of, or stopped,
or a timeout" several times a notice. `asyncio.wait` over `Event.wait()` coroutines made
a task per event and per wait, then cancelled the ones that had not fired: each such task
is a few loop turns of its own (its first step, its cancellation), on every notice's
path. A `Signal` is an `asyncio.Event` that also resolves the one future a `wait_any`
caller sleeps on, so a wait is one future and one timer, and nothing to cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

__all__ = ["Signal", "wait_any"]


class Signal(asyncio.Event):
    """An `asyncio.Event` that `wait_any` can wait on together with others."""

    def __init__(self) -> None:
        super().__init__()
        self._sleepers: set[asyncio.Future[Signal | None]] = set()

    def set(self) -> None:
        super().set()
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(self)
        self._sleepers.clear()


async def wait_any(signals: Sequence[Signal], timeout: float) -> Signal | None:
    """Until one of `signals` is set (the first set, in the order given if several are
    already) or `timeout` seconds passed (None). Always yields to the loop at least once,
    as a wait on `Event.wait()` tasks did: a caller looping on a set signal still lets
    other tasks run."""
    ready = next((signal for signal in signals if signal.is_set()), None)
    if ready is not None or timeout <= 0:
        await asyncio.sleep(0)
        return ready
    loop = asyncio.get_running_loop()
    sleeper: asyncio.Future[Signal | None] = loop.create_future()
    for signal in signals:
        signal._sleepers.add(sleeper)
    timer = loop.call_later(timeout, _time_up, sleeper)
    try:
        return await sleeper
    finally:
        timer.cancel()
        for signal in signals:
            signal._sleepers.discard(sleeper)


def _time_up(sleeper: asyncio.Future[Signal | None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)
