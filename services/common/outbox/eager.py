"""Rows handed over whose produce request went out from the commit's own callback.

A relay that does not linger and is idle when a commit hands it rows (intake's
`notice.received` at a low rate) would publish them one loop turn later, and the
publisher's request a few turns after that: behind the rest of the committing task
(intake's 201 and its log line, ~0.5 ms). A publisher that can begin a send in the
caller's turn (`StartingPublisher`, the Kafka one) writes the request from the commit's
callback instead, and the relay's round awaits its outcome where it would have published
(`Started.publish`). The rows stay handed over as before: the round settles them (deleted
once acknowledged, held back if not), and a stop publishes what is left.

Only committed rows get here (the callback runs after the commit), so nothing is sent
that could still roll back. Rows handed over after the start but in the same round go
after the started ones are acknowledged, and a key whose started row failed sends none
of its later rows (they are held back behind it, as a failed wave holds its key's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from services.common.logging import get_logger
from services.common.outbox.ordering import HeldBehind
from services.common.outbox.writing import OutboxRow

__all__ = ["Started", "StartingPublisher"]

log = get_logger(__name__)


@runtime_checkable
class StartingPublisher(Protocol):
    """A publisher that can write a batch's request now and be awaited for it later."""

    def start_keys_together(
        self, rows: Sequence[OutboxRow]
    ) -> Awaitable[Sequence[BaseException | None]] | None: ...


class Started:
    """At most one batch begun at a commit, until the relay's round takes its outcome."""

    def __init__(self, publisher: StartingPublisher) -> None:
        self._publisher = publisher
        self._rows: dict[int, OutboxRow] = {}
        self._outcome: Awaitable[Sequence[BaseException | None]] | None = None

    @property
    def ids(self) -> set[int]:
        """The rows begun and not yet taken by a round."""
        return set(self._rows)

    def start(self, rows: Sequence[OutboxRow]) -> bool:
        """Begin publishing `rows` now (committed rows, one batch); whether it began."""
        if self._outcome is not None:
            return False
        try:
            outcome = self._publisher.start_keys_together(rows)
        except Exception as exc:  # the round publishes them as before
            log.warning("outbox.start_failed", error=type(exc).__name__)
            return False
        if outcome is None:
            return False
        self._rows = {row.id: row for row in rows}
        self._outcome = outcome
        return True

    async def publish(
        self,
        rows: Sequence[OutboxRow],
        publish: Callable[[Sequence[OutboxRow]], Awaitable[Sequence[object]]],
    ) -> Sequence[object]:
        """Per row of `rows` None or its error: the begun ones' outcome, then the others
        through `publish` (a key whose begun row failed holds its later rows back)."""
        if self._outcome is None:
            return await publish(rows)
        begun, outcome = self._rows, self._outcome
        self._rows, self._outcome = {}, None
        results: dict[int, object] = dict(zip(begun, await outcome, strict=True))
        failed = {
            begun[i].key for i, result in results.items() if isinstance(result, BaseException)
        }
        rest = [row for row in rows if row.id not in begun]
        held = [row for row in rest if row.key in failed]
        for row in held:
            results[row.id] = HeldBehind()
        sending = [row for row in rest if row.key not in failed]
        if sending:
            results.update(zip((row.id for row in sending), await publish(sending), strict=True))
        return [results[row.id] for row in rows]
