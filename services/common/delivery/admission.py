"""What a claimed record becomes: a send holding one of its destination's slots, or an
outcome recorded at once (expired, skipped, no address, busy destination, open breaker).

The engine's per-process limits live here in use: `Claims` counts the sends per
destination, `DestinationLimits` says how many each may have, `CircuitBreakers` which
destinations to leave alone. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from schemas.deliveries import DeliveryChannel
from services.common.delivery.claims import Claims
from services.common.delivery.config import EngineConfig
from services.common.delivery.errors import DeliveryError, ReasonClass
from services.common.delivery.metrics import PUT_BACK
from services.common.delivery.outcomes import Busy, Outcome, failure_outcome
from services.common.delivery.plan import Resolution
from services.common.delivery.policy import (
    DESTINATION_ANSWERED,
    DESTINATION_TROUBLE,
    CircuitBreakers,
    DestinationLimits,
    claim_room,
)
from services.common.delivery.records import Delivered, DeliveryRecord
from services.common.delivery.registry import Outbound, Skip, SmsReceipt
from services.common.logging import get_logger

__all__ = ["Admission", "Send"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Send:
    """A message to send now, holding a slot of destination `key`."""

    record: DeliveryRecord
    outbound: Outbound
    key: str


class Admission:
    """Sorts claimed records into sends and immediate outcomes (see the module docstring)."""

    def __init__(
        self,
        *,
        service: str,
        config: EngineConfig,
        claims: Claims,
        limits: DestinationLimits,
        breakers: CircuitBreakers,
        destination_key: Callable[[DeliveryChannel, str], str],
        rng: random.Random,
    ) -> None:
        self._service = service
        self._config = config
        self._claims = claims
        self._limits = limits
        self._breakers = breakers
        self._key = destination_key
        self._rng = rng

    def room(self, now: datetime) -> tuple[list[str], dict[str, int]]:
        """What the next claim may take of each destination (`policy.claim_room`)."""
        return claim_room(
            busy=self._claims.busy(), limits=self._limits,
            unavailable=self._breakers.open_keys(now),
        )  # fmt: skip

    @staticmethod
    def expired(record: DeliveryRecord, now: datetime) -> bool:
        """Tried before and past its give-up time: not resolved, failed at once."""
        return record.attempts > 0 and now >= record.give_up_at

    def sort(
        self,
        records: list[DeliveryRecord],
        resolved: dict[uuid.UUID, Resolution],
        now: datetime,
    ) -> tuple[list[Outcome], list[Send]]:
        """Each claimed record with what the plan made of it: a send (webhooks first), or
        (expired, skipped, no address, busy destination, open breaker) its outcome, recorded
        at once."""
        immediate: list[Outcome] = []
        sends: list[Send] = []
        for record in records:
            answer = resolved.get(record.delivery_id)
            match answer:
                case None:  # not asked: past its give-up time
                    immediate.append(self.failure(record, "expired", now))
                case DeliveryError():
                    immediate.append(
                        self.failure(record, answer.reason, now, permanent=answer.permanent)
                    )
                case Skip():
                    immediate.append(Outcome(record=record, result=answer, at=now))
                case Exception():
                    log.error(
                        "delivery.resolve_failed",
                        service=self._service,
                        delivery_id=str(record.delivery_id),
                        error=type(answer).__name__,
                        exc_info=answer,
                    )
                    immediate.append(self.failure(record, "internal", now))
                case _ if answer.channel != record.channel:
                    # Never on another channel than the one asked for: a plan bug.
                    log.error("delivery.channel_mismatch", delivery_id=str(record.delivery_id))
                    immediate.append(self.failure(record, "internal", now, permanent=True))
                case _:
                    send = self._admit(record, answer, now, immediate)
                    if send is not None:
                        sends.append(send)
        # Webhooks' tasks first: the other channels' yield a turn to them (registry.py).
        sends.sort(key=lambda send: send.outbound.channel != "webhook")
        return immediate, sends

    def _admit(
        self, record: DeliveryRecord, outbound: Outbound, now: datetime, immediate: list[Outcome]
    ) -> Send | None:
        """Take a per-destination slot, or put the record back (busy, breaker open)."""
        key = self._key(record.channel, outbound.address)
        if self._claims.sending_to(key) >= self._limits.limit(key):
            # Claimable again at once: its destination is known now, so the next claim
            # takes it only when that destination has a free slot.
            retry_at = now
            PUT_BACK.labels(self._service, record.channel, "destination_busy").inc()
            immediate.append(
                Outcome(record=record, result=Busy(retry_at), at=now, destination_key=key)
            )
            return None
        if not self._breakers.allow(key, now):
            immediate.append(self.failure(record, "circuit_open", now, key=key))
            return None
        self._claims.take_slot(key)
        return Send(record, outbound, key)

    def put_back(self, records: list[DeliveryRecord], now: datetime) -> list[Outcome]:
        """Handed-off records past `max_in_flight`: due again at once, for a claim to take
        when slots are free."""
        for record in records:
            PUT_BACK.labels(self._service, record.channel, "engine_full").inc()
        return [Outcome(record=record, result=Busy(now), at=now) for record in records]

    def answered(
        self, send: Send, answer: SmsReceipt | Exception | None, *, now: datetime, seconds: float
    ) -> Outcome:
        """What a send's answer (a receipt, None, or the exception it raised) makes of its
        record, after `seconds` on the network; the destination's breaker and limit learn
        from it."""
        record, key = send.record, send.key
        opened = False
        match answer:
            case DeliveryError():
                if answer.reason in DESTINATION_TROUBLE:
                    opened = self._breakers.record_failure(key, now)
                    self._limits.troubled(key)
                elif answer.reason in DESTINATION_ANSWERED:
                    self._breakers.record_success(key)
                else:
                    self._breakers.release_probe(key)
                outcome = self.failure(
                    record, answer.reason, now, key=key, attempted=True, permanent=answer.permanent
                )
            case Exception():
                self._breakers.release_probe(key)
                log.error(
                    "delivery.send_crashed",
                    service=self._service,
                    delivery_id=str(record.delivery_id),
                    error=type(answer).__name__,
                )
                outcome = self.failure(record, "internal", now, key=key, attempted=True)
            case _:
                self._breakers.record_success(key)
                self._limits.answered(key, seconds=seconds)
                result = Delivered(
                    attempts=record.attempts + 1, delivered_at=now, destination_key=key,
                    segments=answer.segments if answer is not None else None,
                )  # fmt: skip
                outcome = Outcome(record=record, result=result, at=now, attempted=True)
        return replace(outcome, destination_key=key, send_seconds=seconds, breaker_opened=opened)

    def failure(
        self,
        record: DeliveryRecord,
        reason: ReasonClass,
        now: datetime,
        *,
        key: str | None = None,
        attempted: bool = False,
        permanent: bool | None = None,
    ) -> Outcome:
        """A failed (or impossible) attempt: retry with backoff before give_up_at, else final."""
        return failure_outcome(
            record, reason, now, key=key, attempted=attempted, permanent=permanent,
            retry_base_s=self._config.retry_base_s, retry_max_s=self._config.retry_max_s,
            reopens=self._breakers.reopens_at(key) if key is not None else None, rng=self._rng,
        )  # fmt: skip
