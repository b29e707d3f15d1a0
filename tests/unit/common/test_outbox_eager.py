"""A batch begun at the commit (eager.py): its outcome taken by the round, rows handed over
after it sent only behind it, a key whose begun row failed holding its later rows back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from services.common.outbox import OutboxRow
from services.common.outbox.eager import Started, StartingPublisher
from services.common.outbox.ordering import HeldBehind


def _row(n: int, key: str) -> OutboxRow:
    return OutboxRow(n, f"m{n}", "aviso.notices.v1", key, "notice.received", {}, str(n))


class Starter:
    """Begins a batch (recorded), its outcome `fail`ing the rows of the keys named."""

    def __init__(self, *, fail: frozenset[str] = frozenset(), ready: bool = True) -> None:
        self.fail = fail
        self.ready = ready
        self.begun: list[list[int]] = []
        self.published: list[list[int]] = []

    def start_keys_together(
        self, rows: Sequence[OutboxRow]
    ) -> Awaitable[Sequence[BaseException | None]] | None:
        if not self.ready:
            return None
        self.begun.append([row.id for row in rows])
        return self._outcome(rows)

    async def _outcome(self, rows: Sequence[OutboxRow]) -> list[BaseException | None]:
        await asyncio.sleep(0)
        return [ConnectionError("leader away") if r.key in self.fail else None for r in rows]

    async def publish(self, rows: Sequence[OutboxRow]) -> list[object]:
        # The round's own publish: what the begun batch's outcome did not cover.
        self.published.append([row.id for row in rows])
        return [None for _ in rows]


async def test_the_round_takes_the_begun_batch_s_outcome_and_sends_the_rest_after() -> None:
    starter = Starter()
    started = Started(starter)
    assert isinstance(starter, StartingPublisher)
    assert started.start([_row(1, "a"), _row(2, "b")])
    assert not started.start([_row(3, "c")])  # one begun batch at a time
    assert started.ids == {1, 2}

    results = await started.publish([_row(1, "a"), _row(2, "b"), _row(3, "c")], starter.publish)

    assert results == [None, None, None]
    assert starter.begun == [[1, 2]]
    assert starter.published == [[3]]  # never the begun rows a second time
    assert started.ids == set()


async def test_a_key_whose_begun_row_failed_holds_its_later_rows_back() -> None:
    starter = Starter(fail=frozenset({"a"}))
    started = Started(starter)
    assert started.start([_row(1, "a")])

    results = await started.publish([_row(1, "a"), _row(2, "a"), _row(3, "b")], starter.publish)

    assert isinstance(results[0], ConnectionError)
    assert isinstance(results[1], HeldBehind)  # not sent past its key's failed row
    assert results[2] is None
    assert starter.published == [[3]]


async def test_a_publisher_that_cannot_begin_now_leaves_the_rows_to_the_round() -> None:
    starter = Starter(ready=False)
    started = Started(starter)
    assert not started.start([_row(1, "a")])

    assert await started.publish([_row(1, "a")], starter.publish) == [None]
    assert starter.published == [[1]]
