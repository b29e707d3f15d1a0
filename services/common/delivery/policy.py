"""Pure retry rules: backoff with full jitter, a circuit breaker and an adaptive
concurrency limit per destination.

No I/O and no wall clock: callers pass `now` and a random source, so the rules unit-test
exactly.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from services.common.delivery.errors import ReasonClass

__all__ = [
    "DESTINATION_ANSWERED",
    "DESTINATION_TROUBLE",
    "BreakerState",
    "CircuitBreakers",
    "DestinationLimits",
    "backoff_delay",
    "claim_room",
    "retry_time",
]

# Failures that say the destination is in trouble (they count towards its breaker), and
# refusals that prove it is alive and answering.
DESTINATION_TROUBLE: frozenset[ReasonClass] = frozenset(
    {"timeout", "unreachable", "http_5xx", "rate_limited", "deferred"}
)
DESTINATION_ANSWERED: frozenset[ReasonClass] = frozenset({"http_4xx", "rejected"})


def backoff_delay(
    attempt: int, *, base_s: float, max_s: float, rng: random.Random | None = None
) -> timedelta:
    """Delay before retry number `attempt` (1 = after the first failure): full jitter.

    Uniform in [0, min(max_s, base_s * 2 ** (attempt - 1))]. Full jitter spreads the
    retries of many deliveries that failed together (a receiver that was down) so they
    do not all come back at the same instant.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # Cap the exponent: 2 ** 1000 is a float overflow, and the ceiling is max_s anyway.
    ceiling = min(max_s, base_s * 2.0 ** min(attempt - 1, 60))
    return timedelta(seconds=(rng or random).uniform(0.0, ceiling))


def retry_time(
    *,
    attempts: int,
    now: datetime,
    give_up_at: datetime,
    base_s: float,
    max_s: float,
    reopens: datetime | None,
    rng: random.Random,
) -> datetime | None:
    """When to try again after a transient failure (None: too late, give up now)."""
    retry_at = now + backoff_delay(max(attempts, 1), base_s=base_s, max_s=max_s, rng=rng)
    if reopens is not None and reopens > retry_at:
        # The destination's breaker is open: come back when a probe may go, spread a
        # little so its records do not all return at one instant.
        retry_at = reopens + timedelta(seconds=rng.uniform(0.0, base_s))
    return None if retry_at > give_up_at else retry_at


BreakerState = Literal["closed", "open", "half_open"]


@dataclass
class _Breaker:
    failures: int = 0
    opened_until: datetime | None = None
    probing: bool = False


class CircuitBreakers:
    """One breaker per destination key, in memory (each process learns on its own).

    closed -> open after `failure_threshold` consecutive transient failures;
    open -> half_open once `cooldown` has passed: one probe may go;
    half_open -> closed when the probe succeeds, -> open again when it fails.
    Permanent refusals (HTTP 4xx) do not count: the destination answered.
    """

    def __init__(
        self, *, failure_threshold: int, cooldown: timedelta, max_tracked: int = 10_000
    ) -> None:
        self._threshold = failure_threshold
        self._cooldown = cooldown
        self._max_tracked = max_tracked
        self._breakers: OrderedDict[str, _Breaker] = OrderedDict()

    def state(self, key: str, now: datetime) -> BreakerState:
        """The breaker's state at `now`."""
        breaker = self._breakers.get(key)
        if breaker is None or breaker.opened_until is None:
            return "closed"
        if now < breaker.opened_until:
            return "open"
        return "half_open"

    def allow(self, key: str, now: datetime) -> bool:
        """May an attempt to `key` go now? In half-open, only one probe at a time."""
        state = self.state(key, now)
        if state == "closed":
            return True
        if state == "open":
            return False
        breaker = self._breakers[key]
        if breaker.probing:
            return False
        breaker.probing = True
        return True

    def reopens_at(self, key: str) -> datetime | None:
        """When `key`'s open breaker lets a probe through (None when closed)."""
        breaker = self._breakers.get(key)
        return breaker.opened_until if breaker is not None else None

    def open_keys(self, now: datetime) -> list[str]:
        """Destinations not to try now (open, or half-open with a probe under way)."""
        return [
            key
            for key, b in self._breakers.items()
            if b.opened_until is not None and (now < b.opened_until or b.probing)
        ]

    def record_success(self, key: str) -> None:
        """The destination answered: close its breaker."""
        self._breakers.pop(key, None)

    def record_failure(self, key: str, now: datetime) -> bool:
        """A transient failure; returns True when this failure opened the breaker."""
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = _Breaker()
            while len(self._breakers) > self._max_tracked:
                self._breakers.popitem(last=False)
        self._breakers.move_to_end(key)
        breaker.failures += 1
        was_open = breaker.opened_until is not None
        if breaker.probing or breaker.failures >= self._threshold:
            # half_open -> open (the probe failed), or closed -> open
            breaker.opened_until = now + self._cooldown
            breaker.probing = False
            return not was_open
        return False

    def release_probe(self, key: str) -> None:
        """A probe ended without telling anything (e.g. a permanent refusal)."""
        breaker = self._breakers.get(key)
        if breaker is not None:
            breaker.probing = False


class DestinationLimits:
    """How many sends one process may have under way to each destination, learned.

    Every destination starts at `initial`. A send the destination answers successfully
    within `fast_answer` earns it one more slot, up to `ceiling`: a destination that
    keeps answering quickly doubles its share every round trip (as TCP's slow start), so
    a burst to one healthy endpoint is not paced by a fixed small limit. A timeout, a 5xx
    or a connection error (`DESTINATION_TROUBLE`) halves it, down to one: a slow or dead
    destination holds at most a slot or two, and never anyone else's. A slow success
    leaves the limit as it is. State is per process and bounded (least recently used
    destinations are forgotten and start again at `initial`).
    """

    def __init__(
        self,
        *,
        initial: int,
        ceiling: int,
        fast_answer: timedelta,
        max_tracked: int = 10_000,
    ) -> None:
        if not 1 <= initial <= ceiling:
            raise ValueError("need 1 <= initial <= ceiling")
        self.initial = initial
        self.ceiling = ceiling
        self._fast_s = fast_answer.total_seconds()
        self._max_tracked = max_tracked
        self._limits: OrderedDict[str, int] = OrderedDict()
        # The few below `initial`, kept apart: a claim asks for them every round, and a
        # fan-out teaches thousands of healthy destinations a limit above it.
        self._reduced: OrderedDict[str, None] = OrderedDict()

    def limit(self, key: str) -> int:
        """Sends to `key` allowed at once now."""
        return self._limits.get(key, self.initial)

    def learned(self) -> dict[str, int]:
        """Every destination whose limit differs from `initial`, most recently used last."""
        return dict(self._limits)

    def reduced(self) -> list[str]:
        """Destinations whose limit is below `initial` now (in trouble lately), most
        recently troubled last."""
        return list(self._reduced)

    def raised(self, most: int) -> list[str]:
        """Up to `most` destinations whose limit is above `initial`, the most recently
        used (last)."""
        found: list[str] = []
        for key in reversed(self._limits):
            if len(found) == most:
                break
            if self._limits[key] > self.initial:
                found.append(key)
        return found[::-1]

    def answered(self, key: str, *, seconds: float) -> None:
        """`key` accepted a send after `seconds`: a quick answer earns one more slot."""
        if seconds <= self._fast_s:
            self._set(key, min(self.limit(key) + 1, self.ceiling))

    def troubled(self, key: str) -> None:
        """`key` timed out, failed (5xx) or could not be reached: halve its share."""
        self._set(key, max(self.limit(key) // 2, 1))

    def _set(self, key: str, value: int) -> None:
        self._reduced.pop(key, None)
        if value == self.initial:
            self._limits.pop(key, None)
            return
        if value < self.initial:
            self._reduced[key] = None
        self._limits[key] = value
        self._limits.move_to_end(key)
        while len(self._limits) > self._max_tracked:
            forgotten, _ = self._limits.popitem(last=False)
            self._reduced.pop(forgotten, None)


# Most destinations a claim caps by name (a bounded statement), and looks at for that;
# most it excludes by name; most destinations with a raised limit it names.
_NAMED_KEYS = 200
_EXCLUDED_KEYS = 500
_RAISED_KEYS = 16


def claim_room(
    *, busy: dict[str, int], limits: DestinationLimits, unavailable: list[str]
) -> tuple[list[str], dict[str, int]]:
    """Destinations the next claim must leave alone (`unavailable`: breaker open; and
    those with every slot busy here), and how many records it may take of each
    destination whose room is not `limits.initial`: its limit less its sends under way.

    Only busy, recently troubled and the few most recently used raised destinations are
    named (a claim takes `initial` of any other): a fan-out teaches thousands of
    destinations a limit, and a claim must stay a cheap statement. A raised destination
    with nothing in flight must be named all the same, or a burst to it would be claimed
    `initial` records a round however high its limit (1,000 escalations to one backup
    went out four at a time). Past the bounds, a record of a busy destination is claimed
    and put back when resolved instead.
    """
    excluded = list(unavailable)
    room: dict[str, int] = {}
    named = dict.fromkeys([*limits.reduced()[-_NAMED_KEYS:], *limits.raised(_RAISED_KEYS), *busy])
    for key in named:
        free = limits.limit(key) - busy.get(key, 0)
        if free <= 0:
            excluded.append(key)
        elif free != limits.initial:
            room[key] = free
    return excluded[:_EXCLUDED_KEYS], dict(list(room.items())[-_NAMED_KEYS:])
