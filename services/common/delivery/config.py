"""The limits and timings of one delivery engine (the `delivery_*` settings)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta

from services.common.settings import CommonSettings

__all__ = ["EngineConfig", "destination_secret"]


@dataclass(frozen=True)
class EngineConfig:
    """Limits and timings of one engine (see the `delivery_*` settings)."""

    max_in_flight: int = 64
    # Where each destination's concurrency starts, and how far a destination that answers
    # quickly (within `fast_answer`) can raise it (`policy.DestinationLimits`).
    per_destination: int = 4
    per_destination_max: int = 32
    fast_answer: timedelta = timedelta(milliseconds=250)
    # A delivery is a message a person reads: a long lease, so that a process slowed
    # down by load keeps its claims (a second send would reach the person twice). The
    # price: a crashed process's in-flight deliveries wait up to the lease; pending
    # records are never held by a lease.
    lease: timedelta = timedelta(seconds=10)
    heartbeat: timedelta = timedelta(seconds=1)
    # After a commit heard of (`lookout`), look no sooner than this after the last look;
    # with nothing heard of and nothing due, look once per `idle_poll` (at most a lease).
    poll_interval: timedelta = timedelta(seconds=1)
    idle_poll: timedelta = timedelta(seconds=10)
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    breaker_failures: int = 5
    breaker_cooldown: timedelta = timedelta(seconds=15)
    # How soon to look again when records are due but their destinations are excluded
    # here (saturated, breaker open) and nothing wakes the engine earlier.
    busy_delay: timedelta = timedelta(milliseconds=200)
    # How long an outcome waits for sends of the same request still in flight, so that one
    # round records them together (`DeliveryEngine._await_siblings`).
    sibling_wait: timedelta = timedelta(milliseconds=25)
    # At a steady rate (sends under way, or a round a linger ago), how long, counted from
    # the oldest outcome queued, a round waits for more outcomes (the next notices'), so
    # that one statement records several. Never while new orders wait or the engine is
    # busy; at most a quarter of the lease. Only the recording waits, not the sends.
    outcome_linger: timedelta = timedelta(milliseconds=40)
    # Orders accepted while this engine has free slots are claimed by it at accept and
    # sent as soon as the accepting transaction commits (`handoff`).
    hand_off: bool = True
    # The engine's own info lines for a delivered or skipped outcome (`delivery.delivered`,
    # `delivery.skipped`). Off where the plan's hooks write a line for each that carries
    # the same fields and more (router's `alert.delivered`, `alert.delivery_skipped`): two
    # lines saying one thing cost a line's rendering twice per notification. Failures,
    # lost leases and opened breakers are always the engine's lines.
    outcome_lines: bool = True

    def __post_init__(self) -> None:
        if self.heartbeat * 2 > self.lease:
            raise ValueError("the heartbeat must renew a lease at least twice before it expires")
        if self.per_destination_max < self.per_destination:
            raise ValueError("per_destination_max must be at least per_destination")

    @property
    def linger_s(self) -> float:
        """`outcome_linger` in seconds, at most a quarter of the lease."""
        return min(self.outcome_linger, self.lease / 4).total_seconds()

    @classmethod
    def from_settings(cls, settings: CommonSettings, *, outcome_lines: bool = True) -> EngineConfig:
        """The configuration the settings describe (`outcome_lines`: the service's choice)."""
        return cls(
            max_in_flight=settings.delivery_max_in_flight,
            per_destination=settings.delivery_per_destination,
            # A ceiling below the starting value would only be a typo: start there, grow not.
            per_destination_max=max(
                settings.delivery_per_destination_max, settings.delivery_per_destination
            ),
            fast_answer=timedelta(seconds=settings.delivery_fast_answer_s),
            lease=timedelta(seconds=settings.delivery_lease_s),
            heartbeat=timedelta(seconds=settings.delivery_heartbeat_s),
            poll_interval=timedelta(seconds=settings.delivery_poll_interval_s),
            idle_poll=timedelta(seconds=settings.delivery_idle_poll_s),
            retry_base_s=settings.delivery_retry_base_s,
            retry_max_s=settings.delivery_retry_max_s,
            breaker_failures=settings.delivery_breaker_failures,
            breaker_cooldown=timedelta(seconds=settings.delivery_breaker_cooldown_s),
            sibling_wait=timedelta(milliseconds=settings.delivery_sibling_wait_ms),
            outcome_linger=timedelta(milliseconds=settings.delivery_outcome_linger_ms),
            hand_off=settings.delivery_hand_off,
            outcome_lines=outcome_lines,
        )


def destination_secret(settings: CommonSettings) -> bytes:
    """The key of destination keys (HMACs naming a destination instead of its address)."""
    # Derived from the fingerprint key, with a label of its own so they can never be
    # compared with restricted-term prints.
    return hmac.new(
        settings.fingerprint_key.get_secret_value().encode(),
        b"aviso-delivery-destination",
        hashlib.sha256,
    ).digest()
