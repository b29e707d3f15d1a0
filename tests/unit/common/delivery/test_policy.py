"""Backoff with full jitter and the per-destination circuit breaker: pure rules."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from services.common.delivery.policy import (
    CircuitBreakers,
    DestinationLimits,
    backoff_delay,
    claim_room,
)
from tests.unit.common.delivery.fakes import T0


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 20, 500])
def test_backoff_stays_within_its_jittered_ceiling(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = min(60.0, 1.0 * 2 ** min(attempt - 1, 60))
    delays = [
        backoff_delay(attempt, base_s=1.0, max_s=60.0, rng=rng).total_seconds() for _ in range(500)
    ]
    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter: the delays spread over the whole range, not bunched at the ceiling.
    assert min(delays) < ceiling * 0.1
    assert max(delays) > ceiling * 0.9


def test_backoff_ceiling_doubles_then_caps() -> None:
    rng = random.Random(1)
    highest = [
        max(backoff_delay(n, base_s=0.5, max_s=10.0, rng=rng).total_seconds() for _ in range(400))
        for n in range(1, 8)
    ]
    assert highest[0] <= 0.5
    assert highest[1] <= 1.0
    assert highest[2] <= 2.0
    assert highest[2] > 1.0  # grew past the previous ceiling
    assert all(h <= 10.0 for h in highest)
    assert highest[-1] > 9.0  # capped, not stuck at a small value


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(0, base_s=1, max_s=2)


def test_breaker_opens_after_threshold_and_probes_once_after_cooldown() -> None:
    breakers = CircuitBreakers(failure_threshold=3, cooldown=timedelta(seconds=10))
    key = "dest"
    assert breakers.state(key, T0) == "closed"
    assert not breakers.record_failure(key, T0)
    assert not breakers.record_failure(key, T0)
    assert breakers.allow(key, T0)
    assert breakers.record_failure(key, T0)  # closed -> open
    assert breakers.state(key, T0) == "open"
    assert not breakers.allow(key, T0 + timedelta(seconds=9))
    assert key in breakers.open_keys(T0 + timedelta(seconds=9))
    later = T0 + timedelta(seconds=10)
    assert breakers.state(key, later) == "half_open"
    assert breakers.allow(key, later)  # the one probe
    assert not breakers.allow(key, later)  # nobody else while it runs
    assert key in breakers.open_keys(later)
    # half_open -> open again when the probe fails; no new "opened" event
    assert not breakers.record_failure(key, later)
    assert breakers.state(key, later) == "open"
    assert breakers.reopens_at(key) == later + timedelta(seconds=10)
    # ... and closed when a later probe succeeds
    much_later = later + timedelta(seconds=10)
    assert breakers.allow(key, much_later)
    breakers.record_success(key)
    assert breakers.state(key, much_later) == "closed"
    assert breakers.open_keys(much_later) == []


def test_breakers_are_per_destination_and_success_resets_the_count() -> None:
    breakers = CircuitBreakers(failure_threshold=2, cooldown=timedelta(seconds=5))
    breakers.record_failure("a", T0)
    breakers.record_success("a")
    breakers.record_failure("a", T0)
    assert breakers.state("a", T0) == "closed"  # not two *consecutive* failures
    breakers.record_failure("b", T0)
    breakers.record_failure("b", T0)
    assert breakers.state("b", T0) == "open"
    assert breakers.state("a", T0) == "closed"


def test_released_probe_lets_the_next_one_go() -> None:
    breakers = CircuitBreakers(failure_threshold=1, cooldown=timedelta(seconds=1))
    breakers.record_failure("k", T0)
    later = T0 + timedelta(seconds=1)
    assert breakers.allow("k", later)
    breakers.release_probe("k")
    assert breakers.allow("k", later)


def _limits() -> DestinationLimits:
    return DestinationLimits(initial=4, ceiling=10, fast_answer=timedelta(milliseconds=250))


def test_a_destination_answering_quickly_earns_one_slot_per_answer_up_to_the_ceiling() -> None:
    limits = _limits()
    assert limits.limit("a") == 4
    for expected in (5, 6, 7):
        limits.answered("a", seconds=0.01)
        assert limits.limit("a") == expected
    for _ in range(20):
        limits.answered("a", seconds=0.01)
    assert limits.limit("a") == 10  # the ceiling
    assert limits.limit("b") == 4  # every destination learns on its own


def test_a_slow_answer_earns_nothing_and_trouble_halves_down_to_one() -> None:
    limits = _limits()
    limits.answered("a", seconds=0.3)
    assert limits.limit("a") == 4
    limits.troubled("a")
    assert limits.limit("a") == 2
    limits.troubled("a")
    limits.troubled("a")
    assert limits.limit("a") == 1  # never zero: a probe still goes
    limits.answered("a", seconds=0.01)
    assert limits.limit("a") == 2
    assert limits.learned() == {"a": 2}


def test_limits_forget_the_least_recently_used_destination() -> None:
    limits = DestinationLimits(
        initial=1, ceiling=4, fast_answer=timedelta(seconds=1), max_tracked=2
    )
    for key in ("a", "b", "c"):
        limits.answered(key, seconds=0.0)
    assert limits.learned() == {"b": 2, "c": 2}
    assert limits.limit("a") == 1


def test_a_raised_destination_with_nothing_in_flight_is_claimed_up_to_its_limit() -> None:
    limits = DestinationLimits(initial=4, ceiling=32, fast_answer=timedelta(milliseconds=250))
    for _ in range(40):
        limits.answered("backup", seconds=0.01)
    excluded, room = claim_room(busy={}, limits=limits, unavailable=[])
    assert room == {"backup": 32}  # not `initial` (4) just because none is in flight now
    assert excluded == []
    excluded, room = claim_room(busy={"backup": 30}, limits=limits, unavailable=[])
    assert room == {"backup": 2}
