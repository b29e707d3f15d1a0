"""A hand-over's "written": the committing task may wait (briefly) until its relay has
handed the rows to the producer and the producer has written its request.

A submitter's 201 follows the commit; the relay publishes the handed rows from the
same event loop. Answering first puts the response's writes, the client's wake-up and
the request task's remainder ahead of the relay's round, so the event reached the
broker up to ~2 ms later than it could have. A route that prefers the event on its
way first awaits `handed_written(within_s=...)` after its commit: it resumes once the
relay's publisher has taken the rows and the producer's sender has had the turns it
needs to write the request, or when `within_s` ran out, whichever comes first. The
answer still follows the commit and never waits for the broker's acknowledgement:
nothing about what was acknowledged changes, only the order of two writes.

How a "written" is told apart from "handed to the publisher" without a hook in the
Kafka client: the relay runs its publish call through `announcing`, which notes the
call's first suspension (in the Kafka publisher, the wait for the acknowledgements:
every record is in the producer's accumulator by then). aiokafka's sender task then
needs `SENDER_TURNS` loop turns to write the produce request (its `asyncio.wait` wakes
on the accumulator's future, the sender drains the batch and spawns the request's
task, which writes it on its way through the client): counted on the pinned aiokafka,
and the waiter is resumed behind them. `tests/integration/common/outbox/
test_outbox_written.py` checks that order on a real broker (one turn fewer fails it),
so an aiokafka that needs more turns is caught there; at worst the answer would go a
turn before the request, as it always did before.

Only a hand-over to an idle relay gets a signal: a relay in the middle of a round (its
records awaiting the broker's answer, then their settling) would publish these rows only
after that round, several ms later, and the waiter would only sit out its bound (at 64
concurrent submissions, on every request). Without a signal the route does not wait.

The first record of a topic may wait for the topic's metadata first: its waiter is
then resumed before the write, as before this module. The relay's first suspension can
also be a full partition queue (`wait_drain`); the bound covers it.
"""

from __future__ import annotations

import asyncio
import types
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

__all__ = [
    "SENDER_TURNS",
    "WrittenSignals",
    "announcing",
    "handed_written",
    "note_hand_over",
    "release_after",
]

_T = TypeVar("_T")

# Loop turns aiokafka's sender needs from a record's append to the produce request's
# write (aiokafka 0.14, counted by the integration test).
SENDER_TURNS = 3

# Per committing task, the "written" of the rows its last commit handed over: True once
# written, False when the waiter gave up. One future per hand-over (a commit is one task's),
# so a request cancelled while it waits cancels only its own.
_pending: weakref.WeakKeyDictionary[asyncio.Task[Any], asyncio.Future[bool]] = (
    weakref.WeakKeyDictionary()
)


def note_hand_over(written: asyncio.Future[bool]) -> None:
    """Called at a commit's hand-over (in the committing task): `written` is its signal."""
    task = asyncio.current_task()
    if task is not None:
        _pending[task] = written


async def handed_written(*, within_s: float) -> bool:
    """Wait until the rows this task's last commit handed over were written to the
    broker's connection, at most `within_s`; whether they were (True without a hand-over)."""
    task = asyncio.current_task()
    written = _pending.pop(task, None) if task is not None else None
    if written is None:
        return True
    if written.done():
        return written.result()
    # The relay resolves this very future: the waiter resumes one turn after it, no task.
    timer = asyncio.get_running_loop().call_later(within_s, _resolve, written, False)
    try:
        return await written
    finally:
        timer.cancel()


def _resolve(written: asyncio.Future[bool], value: bool) -> None:
    if not written.done():
        written.set_result(value)


def release_after(waiters: list[asyncio.Future[bool]], *, turns: int) -> None:
    """Resolve `waiters` (written) `turns` loop turns from now; each resumes a turn later."""
    loop = asyncio.get_running_loop()

    def step(left: int) -> None:
        if left > 0:
            loop.call_soon(step, left - 1)
            return
        for waiter in waiters:
            _resolve(waiter, True)

    step(turns)


class WrittenSignals:
    """A relay's hand-overs' "written": one per hand-over (`add`, in the committing task),
    taken by the round that publishes their rows (`take`), resolved `SENDER_TURNS` turns
    after that round's publish call first suspended (`announced`)."""

    def __init__(self) -> None:
        self._waiting: list[asyncio.Future[bool]] = []
        self._taken: list[asyncio.Future[bool]] = []

    def add(self) -> None:
        """A commit handed rows over: its signal, noted for the committing task."""
        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append(written)
        note_hand_over(written)

    def take(self) -> None:
        """The hand-overs so far go in this round (a batch's overflow, or rows sent to a
        claim, resolve with it: the waiter's bound is a few ms, nothing waits on them)."""
        self._taken, self._waiting = self._taken + self._waiting, []

    def release(self) -> None:
        """The round publishes nothing: its signals resolve now."""
        taken, self._taken = self._taken, []
        release_after(taken, turns=0)

    def announced(self, publishing: Awaitable[_T]) -> Awaitable[_T]:
        """`publishing`, resolving the taken signals once it first suspends."""
        if not self._taken:
            return publishing
        taken, self._taken = self._taken, []
        return announcing(publishing, lambda: release_after(taken, turns=SENDER_TURNS))


@types.coroutine
def announcing(
    awaitable: Awaitable[_T], on_suspended: Callable[[], None]
) -> Generator[Any, Any, _T]:
    """Await `awaitable`, calling `on_suspended` once, when it first suspends (or ends)."""
    steps = awaitable.__await__()
    announced = False
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            yielded = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as done:
            if not announced:
                on_suspended()
            return done.value  # type: ignore[no-any-return]
        if not announced:
            announced = True
            on_suspended()
        try:
            value, error = (yield yielded), None
        except BaseException as exc:  # delivered into the awaitable, as `await` would
            value, error = None, exc
