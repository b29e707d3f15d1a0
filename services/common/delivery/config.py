"""The limits and timings of one delivery engine (the `delivery_*` settings)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from services.common.settings import CommonSettings

__all__ = ["EngineConfig"]


@dataclass(frozen=True)
class EngineConfig:
    """Limits and timings of one engine (see the `delivery_*` settings)."""

    max_in_flight: int = 64
    per_destination: int = 4
    # A delivery is a message a person reads: a long lease, so that a process slowed
    # down by load keeps its claims (a second send would reach the person twice). The
    # price: a crashed process's in-flight deliveries wait up to the lease; pending
    # records are never held by a lease.
    lease: timedelta = timedelta(seconds=10)
    heartbeat: timedelta = timedelta(seconds=1)
    poll_interval: timedelta = timedelta(seconds=1)
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    breaker_failures: int = 5
    breaker_cooldown: timedelta = timedelta(seconds=15)
    # How long a record whose destination is busy waits before it is claimable again.
    busy_delay: timedelta = timedelta(milliseconds=200)

    def __post_init__(self) -> None:
        if self.heartbeat * 2 > self.lease:
            raise ValueError("the heartbeat must renew a lease at least twice before it expires")

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> EngineConfig:
        """The configuration the settings describe."""
        return cls(
            max_in_flight=settings.delivery_max_in_flight,
            per_destination=settings.delivery_per_destination,
            lease=timedelta(seconds=settings.delivery_lease_s),
            heartbeat=timedelta(seconds=settings.delivery_heartbeat_s),
            poll_interval=timedelta(seconds=settings.delivery_poll_interval_s),
            retry_base_s=settings.delivery_retry_base_s,
            retry_max_s=settings.delivery_retry_max_s,
            breaker_failures=settings.delivery_breaker_failures,
            breaker_cooldown=timedelta(seconds=settings.delivery_breaker_cooldown_s),
        )
