"""What one engine holds: its claimed records, its sends per destination, and their lease.

A claim is a lease (`claimed_until`) that the heartbeat renews while the record is in
flight. Under load a lease can still run out before the heartbeat renews it (the event
loop or the database fell behind), and another process then takes the record over. Two
rules keep that from becoming a second message to a person:

- the heartbeat drops every record the renewal says another process holds now: it is
  neither renewed nor counted as ours any more;
- a round that took longer than a heartbeat between its claim and its sends renews the
  claims first and sends only the records that renewal extended (`confirm`).

A send already on the network when its claim is lost cannot be called back; its outcome
is not recorded (the settlement checks the claim) and the log says `delivery.lease_lost`.

Records whose outcome is being recorded (`settling`) are neither renewed nor counted as
lost: their settlement locks them and ends the claim itself, and a renewal that reads them
just after it committed must not mistake our own settlement for another process's claim.

The heartbeat renews a claim only once its lease has half of it left, or two heartbeats
if that is more (`_renew_within`): a record sent and settled within that time, nearly
every one, is never renewed. A renewal rewrites the whole row, and renewing every held
claim on every beat rewrote rows that had nine tenths of their lease left. Past that
point a claim is renewed on every beat as before, so it is tried at least twice before
it runs out (the configuration keeps two heartbeats within a lease).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from services.common.delivery.metrics import IN_FLIGHT
from services.common.delivery.records import DeliveryRecord
from services.common.delivery.store import DeliveryStore
from services.common.logging import get_logger

__all__ = ["Claims"]

log = get_logger(__name__)


class Claims:
    """The records this engine claimed and has not settled, and its sends per destination."""

    def __init__(
        self,
        *,
        store: DeliveryStore,
        owner: str,
        service: str,
        lease: timedelta,
        heartbeat: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._owner = owner
        self._service = service
        self._lease = lease
        self._heartbeat = heartbeat
        self._clock = clock
        self._held: dict[uuid.UUID, DeliveryRecord] = {}
        # Where each held claim's lease ends, as we last set it (absent: unknown, renewed
        # on every beat).
        self._until: dict[uuid.UUID, datetime] = {}
        self._renew_within = max(lease / 2, heartbeat * 2)
        self._settling: set[uuid.UUID] = set()
        self._sent: set[uuid.UUID] = set()  # the network part is over; outcome not recorded
        self._busy: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, delivery_id: uuid.UUID) -> bool:
        return delivery_id in self._held

    @property
    def unsent(self) -> int:
        """Held records still to be sent, or being sent now."""
        return len(self._held) - len(self._sent)

    def sent(self, delivery_id: uuid.UUID) -> None:
        """`delivery_id`'s attempt is over; its outcome waits to be recorded."""
        if delivery_id in self._held:
            self._sent.add(delivery_id)

    def hold(
        self, records: Iterable[DeliveryRecord], *, claimed_at: datetime | None = None
    ) -> None:
        """Records just claimed (at `claimed_at`, leased until `claimed_at + lease`)."""
        until = claimed_at + self._lease if claimed_at is not None else None
        for record in records:
            self._held[record.delivery_id] = record
            if until is not None:
                self._until[record.delivery_id] = until
        self._gauge()

    def settling(self, ids: Iterable[uuid.UUID]) -> None:
        """Records whose outcome is being recorded now: the settlement ends their claim."""
        self._settling.update(i for i in ids if i in self._held)

    def release(self, ids: Iterable[uuid.UUID]) -> None:
        """Records settled (or lost): no longer ours to renew."""
        for delivery_id in ids:
            self._held.pop(delivery_id, None)
            self._until.pop(delivery_id, None)
            self._settling.discard(delivery_id)
            self._sent.discard(delivery_id)
        self._gauge()

    def _renewable(self) -> list[uuid.UUID]:
        """Held claims not being settled whose lease ends within `_renew_within`."""
        due = self._clock() + self._renew_within
        until = self._until
        return [
            i for i in self._held if i not in self._settling and (i not in until or until[i] <= due)
        ]

    def _renewed(self, ids: Iterable[uuid.UUID], until: datetime) -> None:
        for delivery_id in ids:
            if delivery_id in self._held:
                self._until[delivery_id] = until

    # -- sends per destination ----------------------------------------------------------

    def sending_to(self, key: str) -> int:
        """Sends to destination `key` under way now."""
        return self._busy[key]

    def busy(self) -> dict[str, int]:
        """Sends under way per destination (only destinations with one or more)."""
        return dict(self._busy)

    def take_slot(self, key: str) -> None:
        """One more send to `key`."""
        self._busy[key] += 1

    def free_slot(self, key: str) -> None:
        """A send to `key` ended (or will not happen)."""
        self._busy[key] -= 1
        if self._busy[key] <= 0:
            del self._busy[key]

    # -- the lease ------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Renew our claims every heartbeat, forever (cancel the task to stop)."""
        interval = self._heartbeat.total_seconds()
        while True:
            await asyncio.sleep(interval)
            ids = self._renewable()
            if not ids:
                continue
            until = self._clock() + self._lease
            try:
                renewal = await self._store.renew(owner=self._owner, ids=ids, until=until)
            except Exception as exc:
                log.warning(
                    "delivery.renew_failed",
                    service=self._service,
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                )
                continue
            self._renewed(renewal.renewed, until)
            # Settled by us while the renewal ran is not lost: only what we still hold.
            lost = [i for i in renewal.lost if i in self._held and i not in self._settling]
            if lost:
                # Taken over by another process: not ours to send or renew any more.
                self.release(lost)
                log.warning("delivery.claims_lost", service=self._service, count=len(lost))

    async def confirm(self, ids: Sequence[uuid.UUID], *, claimed_at: datetime) -> set[uuid.UUID]:
        """Which of `ids` may be sent now: still held, and renewed if the claim is old.

        The others are released here; the caller gives back their destination slots.
        """
        ours = {i for i in ids if i in self._held}  # the heartbeat released the lost ones
        now = self._clock()
        if ours and not self.fresh(claimed_at):
            try:
                renewal = await self._store.renew(
                    owner=self._owner, ids=sorted(ours), until=now + self._lease
                )
                ours &= renewal.renewed
                self._renewed(renewal.renewed, now + self._lease)
            except Exception as exc:
                # Unconfirmed: not sent. The claims lapse and the records come back.
                log.warning("delivery.renew_failed", service=self._service,
                            error=type(exc).__name__)  # fmt: skip
                ours = set()
        return self._drop_others(ids, ours)

    def fresh(self, claimed_at: datetime) -> bool:
        """Whether claims taken at `claimed_at` are sent without renewing them (`confirm`)."""
        return self._clock() - claimed_at < self._heartbeat

    def confirm_fresh(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """`confirm` for claims that are `fresh`: no renewal, so no I/O and no await."""
        return self._drop_others(ids, {i for i in ids if i in self._held})

    def _drop_others(self, ids: Sequence[uuid.UUID], ours: set[uuid.UUID]) -> set[uuid.UUID]:
        dropped = [i for i in ids if i not in ours]
        if dropped:
            self.release(dropped)
            log.warning("delivery.not_sent_claim_lost", service=self._service, count=len(dropped))
        return ours

    def _gauge(self) -> None:
        IN_FLIGHT.labels(self._service).set(len(self._held))
