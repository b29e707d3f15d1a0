"""A relay's linger: rows handed over wait a few milliseconds for more, then go together.

Router's relay gets a notice's alert events one by one (`alert.triggered`, then each
channel's outcome a few milliseconds apart), all of one key. Sent as they come, each is
a produce round, a settling statement, and a fetch answered to every member reading the
topic. Lingering (`linger_s` after the first row handed over, or until `rows` rows wait)
sends them in one round and settles them in one statement. None of those events is on
the SPOC's path; intake's `notice.received` is, so intake does not linger (0). A topic named
`at_once` ends the linger as soon as one of its rows is handed over (router's directory
changes: intake's access decisions follow them), and the rows waiting go with it.

Nothing is lost while rows linger: they are committed rows, leased to this relay; a crash
leaves them to a claim once the lease ends, and a stop ends the linger at once.

A key's later row is handed to this relay while its earlier one is still unsent (leased
to this relay: handoff.py), so the relay keeps order itself: a key whose row went to a
claim instead (too old to trust its lease) or failed is held, and its rows handed over
meanwhile go to a claim as well, behind it. A hold lasts twice the lease after the last
row it turned away: by then every such row's lease has ended and a claim takes the key's
rows together, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Final

from services.common.outbox.wakeup import Wakeup

__all__ = ["Lingering"]

# How many batches' worth of handed rows one round may take. A relay whose loop is busy
# with other work (intake's, at a high rate) is held back by loop turns per round, not
# rows per round: at 100 rows a round it fell behind at 100/s and never caught up.
_ROUND_BATCHES = 4


class Lingering:
    """When a relay's handed rows go, and which keys must go through a claim."""

    def __init__(
        self,
        *,
        linger_s: float,
        rows: int,
        lease_s: float,
        at_once: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A handed row older than a third of its lease costs a statement to lease it
        # again (relay.py); a linger of at most half of that leaves the loop the other half.
        if not 0 <= linger_s <= lease_s / 6:
            raise ValueError("linger_s must be between 0 and a sixth of the claim lease")
        self.linger_s = linger_s
        self._rows = max(1, rows)
        # Rows one round takes when more wait (a backlog): up to a few batches at once.
        self.round_rows = self._rows * _ROUND_BATCHES
        self._hold_s = 2 * lease_s
        self._at_once: Final = frozenset(at_once)
        self._clock = clock
        self._held: dict[str, float] = {}

    def now(self) -> float:
        """The linger's clock (a hand-over to an empty queue starts the linger then)."""
        return self._clock()

    def at_once(self, topics: Iterable[str]) -> bool:
        """Whether rows of `topics` end the linger as soon as they are handed over."""
        return bool(self._at_once) and not self._at_once.isdisjoint(topics)

    async def wait(
        self,
        *,
        first_at: float,
        count: Callable[[], int],
        woken: Wakeup,
        stopping: asyncio.Event,
        urgent: Callable[[], bool] = lambda: False,
    ) -> None:
        """Until `linger_s` after `first_at` (the clock's time), `rows` rows, a row that
        goes at once (`urgent`), or a stop."""
        while not stopping.is_set() and count() < self._rows and not urgent():
            left = first_at + self.linger_s - self._clock()
            if left <= 0:
                return
            woken.clear()  # each hand-over sets it (so does a stop): look at the count again
            await woken.wait(left)

    def held(self, key: str) -> bool:
        """Whether `key`'s handed rows must follow an earlier row through a claim."""
        until = self._held.get(key)
        if until is None:
            return False
        if until <= self._clock():
            del self._held[key]
            return False
        return True

    def hold(self, key: str) -> None:
        """Send `key`'s handed rows through a claim for a while (see the module's text)."""
        now = self._clock()
        if len(self._held) > 1024:  # forget the holds that ended
            self._held = {k: until for k, until in self._held.items() if until > now}
        self._held[key] = now + self._hold_s

    def hold_all(self, keys: Iterable[str]) -> None:
        """`hold` each of `keys`."""
        for key in keys:
            self.hold(key)
