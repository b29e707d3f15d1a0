"""When the engine's next claim must look for due records.

A round records outcomes and claims in one transaction. The claim (and its "when is the
next record due" read) is needed only when something may be due that this engine has not
looked at: new orders were accepted (`DeliveryEngine.wake`), an outcome put a record back
(a retry, a busy destination), the earliest due time it read has come, a commit was heard
of, or the idle poll passed. A round that records only final outcomes (delivered, failed
for good, skipped) before then claims nothing: at a low rate, that is most rounds.

Orders of this process announce themselves (`wake`); retries, put-backs and another
process's leases have due times the claim reads. What no due time tells is an order
another process accepted and did not take itself (it stopped, or has no engine running):
its commit comes with an event, so the engine hears of it (`outbox.watch_commits`, other
processes' NOTIFYs only: this process's own commits would add nothing to `wake` but a
look a second while notices flow) and looks again a poll interval after its last look
at the latest (`heard`). With nothing heard of, it looks once per idle poll,
the safety net for a NOTIFY lost with its connection: an idle engine no longer runs a
claim transaction every second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.common.delivery.outcomes import Outcome, due_again, final

__all__ = ["Lookout", "Round"]


@dataclass(frozen=True)
class Round:
    """What one engine round did: records claimed of `limit` wanted, and (`looked`: this
    round's claim or an earlier one read it) when the earliest record not claimed is due."""

    claimed: int
    limit: int
    due: datetime | None
    looked: bool


class Lookout:
    """The time the next claim must look again (`at`; None: at the next round)."""

    def __init__(self, poll_interval: timedelta, idle_poll: timedelta | None = None) -> None:
        self._poll = poll_interval
        self._idle = idle_poll if idle_poll is not None else poll_interval
        self._looked_at: datetime | None = None
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
        is due, or after the idle poll, whichever comes first."""
        self._looked_at = now
        if full:
            self.at = None
            return
        times = [now + self._idle, *(t for o in batch if (t := due_again(o)) is not None)]
        self.at = min(times) if due is None else min(due, *times)

    def seconds_to_look(
        self, due: datetime | None, now: datetime, *, last_claim_at: datetime,
        busy_delay: timedelta,
    ) -> float:  # fmt: skip
        """How long an engine with free slots may sleep at `now` before the next round
        must look: the idle poll, or less when `due` (the last claim's read) or `at` says."""
        timeout = self._idle.total_seconds()
        if self.at is not None and self.at > now:
            timeout = min(timeout, (self.at - now).total_seconds())
        if due is not None and due > now:
            timeout = min(timeout, (due - now).total_seconds())
        elif due is not None:
            # Due already: either it became due after the last claim looked (go now), or
            # its destination is excluded here (busy, breaker open): look again shortly.
            later = due > last_claim_at
            timeout = 0.0 if later else min(timeout, busy_delay.total_seconds())
        return timeout

    def heard(self) -> None:
        """A commit that may have made records due was heard of: look again a poll
        interval after the last look at the latest (a busy process hears of many commits
        and still looks no more often than that)."""
        if self._looked_at is None or self.at is None:
            return  # the next round looks anyway
        self.at = min(self.at, self._looked_at + self._poll)

    def forget(self) -> None:
        """Something may be due that no claim has seen: look at the next round."""
        self.at = None
