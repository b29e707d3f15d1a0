"""When the engine's next claim must look for due records.

A round records outcomes and claims in one transaction. The claim (and its "when is the
next record due" read) is needed only when something may be due that this engine has not
looked at: new orders were accepted (`DeliveryEngine.wake`), an outcome put a record back
(a retry, a busy destination), the earliest due time it read has come, or a poll interval
passed (another process's orders announce themselves only through the poll). A round that
records only final outcomes (delivered, failed for good, skipped) before then claims
nothing: at a low rate, that is most rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from services.common.delivery.outcomes import Outcome, due_again, final

__all__ = ["Lookout"]


class Lookout:
    """The time the next claim must look again (`at`; None: at the next round)."""

    def __init__(self, poll_interval: timedelta) -> None:
        self._poll = poll_interval
        self.at: datetime | None = None

    def must_look(self, batch: Sequence[Outcome], now: datetime, *, woken: bool) -> bool:
        """Whether a round recording `batch` at `now` claims (`woken`: by new orders)."""
        if woken or self.at is None or now >= self.at:
            return True
        return not all(final(outcome) for outcome in batch)

    def looked(
        self, due: datetime | None, now: datetime, *, batch: Sequence[Outcome], full: bool
    ) -> None:
        """A claim at `now` took what fitted (`full`: all it could; there may be more) and
        read that the next record is `due`: look again then, when a record `batch` put back
        is due, or after a poll interval, whichever comes first."""
        if full:
            self.at = None
            return
        times = [now + self._poll, *(t for o in batch if (t := due_again(o)) is not None)]
        self.at = min(times) if due is None else min(due, *times)

    def forget(self) -> None:
        """Something may be due that no claim has seen: look at the next round."""
        self.at = None
